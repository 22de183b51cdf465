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

app = typer.Typer(
    name="lllt",
    help="Run and check photobiomodulation (low-level light therapy) cap sessions.",
    no_args_is_help=True,
    add_completion=False,
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
    """Run the CLI and map every outcome to an exit code (DESIGN §12)."""
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
