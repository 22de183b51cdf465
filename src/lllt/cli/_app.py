"""The typer application and the one place where errors become messages and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

import lllt
from lllt.errors import LlltError

F = TypeVar("F", bound=Callable[..., Any])

#: the same words for the same option on every command
DB_HELP = "Session log FILE (default: $LLLT_DB, else sessions.db in the user data folder)."
DEVICE_HELP = "Device URL, e.g. sim://reference-cap or serial:///dev/ttyACM0."
JSON_HELP = "Print JSON instead of text (one document on stdout)."
LIMITS_HELP = "Limits FILE that lowers the default limits."
PROFILE_HELP = "Device PROFILE of a built-in simulator (see `lllt devices`)."
RESEARCH_HELP = "Allow a research-only protocol."
EXIT_CODES = (
    "Exit codes: 0 done; 1 refused or stopped by a safety limit or a device fault; "
    "2 invalid input; 3 device, link or session log problem; 130 stopped by the user."
)


def epilog(*examples: str, codes: str = EXIT_CODES) -> str:
    """An "Examples:" section and the exit codes, laid out as written (click's \\b)."""
    lines = "\n".join(f"  {e}" for e in examples)
    return f"\b\nExamples:\n{lines}\n\n{codes}"


def _house_style() -> None:
    """One placeholder style in every --help: upper-case words (FILE, URL, N, PROTOCOL).

    Typer prints ``<str>``, ``<path>``, ``{ARG}`` and ``FILE <list[str]>`` by default; here
    a placeholder is the parameter's metavar, else FILE for paths, N for numbers and the
    parameter's name in upper case."""
    from typer import core

    def option_type(self: Any, ctx: Any) -> str | None:
        if self.metavar is not None:
            name = str(self.metavar)
        elif self.type_descriptor.is_path:
            name = "FILE"
        elif self.type_descriptor.is_ranged or self.bare_type() in ("int", "float"):
            name = "N"
        else:
            name = str(self.name or "VALUE").upper().replace("_", "-")
        return name + ("..." if self.nargs != 1 else "")

    def arg_name(self: Any) -> str:
        return str(self.metavar or self.name or "ARG").upper()

    def arg_rich(self: Any) -> str:
        return arg_name(self) + ("..." if self.nargs != 1 else "")

    def arg_usage(self: Any) -> str:
        name = arg_name(self) if self.required else f"[{arg_name(self)}]"
        return name + ("..." if self.nargs != 1 else "")

    core.TyperOption.display_type_rich = option_type  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = arg_rich  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = arg_usage  # type: ignore[method-assign]


_house_style()

app = typer.Typer(
    name="lllt",
    help="Run and check photobiomodulation (low-level light therapy) cap sessions.",
    epilog=epilog(
        "lllt protocol list",
        'lllt run aga-red-eod-25min --device "sim://reference-cap?speed=max" --db ./demo.db',
        "lllt history --db ./demo.db",
        "lllt COMMAND --help",
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lllt {lllt.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """lllt: host stack and simulator for photobiomodulation caps."""


def err(message: str) -> None:
    """One message to stderr, never a traceback."""
    print(message, file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def handle_errors(func: F) -> F:
    """Decorator for command bodies: LlltError -> message + exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LlltError as e:
            err(str(e) if e.exit_code == 130 else f"error: {e}")
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


def run_app(application: typer.Typer, argv: list[str] | None) -> int:
    """Run the CLI and map every outcome to an exit code."""
    import os

    try:
        rv = application(args=argv, prog_name="lllt", standalone_mode=False)
    except LlltError as e:
        err(f"error: {e}")
        return e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        err("stopped by the user")
        return 130
    except typer.TyperException as e:  # usage errors: bad option, missing argument
        show = getattr(e, "show", None)
        if show is not None:
            show()
        else:
            err(f"error: {e.format_message()}")
        return e.exit_code
    except Exception as e:
        if os.environ.get("LLLT_DEBUG"):
            raise
        err(f"internal error: {type(e).__name__}: {e}")
        err("This is a bug in lllt; set LLLT_DEBUG=1 to see the traceback and please report it.")
        return 1
    return rv if isinstance(rv, int) else 0
