"""``lllt protocol new``: start one's own protocol from a commented template.

From scratch the template is written for a device profile (its first wavelength, a low
irradiance); ``--from`` copies a shipped protocol (or any protocol file) with a new id and
name. Either way the file is loaded and validated before it is written, so it passes
``lllt protocol check`` as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from lllt.cli._app import PROFILE_HELP, epilog, handle_errors
from lllt.cli.protocol_cmds import protocol_app

_EXAMPLES = epilog(
    "lllt protocol new my-protocol.toml",
    "lllt protocol new my-protocol.toml --from aga-red-eod-25min",
    "lllt protocol new helmet.toml --profile led-helmet-rgb",
    codes=(
        "Exit codes: 0 written; 2 invalid input (FILE exists, unknown PROFILE "
        "or PROTOCOL, folder missing)."
    ),
)

_TEMPLATE = """\
# {name}: a protocol written by `lllt protocol new`. Edit it, then check it with
#   lllt protocol check {file} --profile {profile}
# and run it with
#   lllt run {file} --device "sim://{profile}?speed=max" --db ./try.db --yes
# Every field is described in docs/protocol-format.md. Quantities carry their units.
format = "lllt-protocol/1"         # the file format; keep as is
id = "{pid}"{id_pad}# lower case letters, digits, ".", "_" and "-"
name = "{name}"
references = [                     # where the numbers come from: a paper, a manual
    "replace with the source of this protocol's numbers",
]

[meta]
profile = "{profile}"{profile_pad}# the device profile it was written for

[schedule]                         # preflight refuses sessions that break these
min_interval = "36 h"              # at least this long between two sessions
max_sessions_per_week = 3          # at most this many in any 7 days
course = "12 weeks"                # how long the course of sessions lasts

[[phases]]                         # one or more phases, run in order
name = "treatment"
duration = "15 min"                # or end on a dose: fluence = "2.7 J/cm^2" plus
                                   # max_duration = "20 min"
ramp = "10 s"                      # soft start
emit = {{ "{wl}nm" = "{irr} mW/cm^2" }}{emit_pad}# wavelength = irradiance at the scalp
zones = ["all"]                    # or some of: {zones}
"""


def _pad(text: str, width: int) -> str:
    return " " * max(1, width - len(text))


def _id_for(path: Path) -> str:
    pid = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._") or "my-protocol"
    return pid[:64]


def _from_scratch(path: Path, profile: str) -> str:
    from lllt.info import DeviceInfo

    info = DeviceInfo.for_profile(profile)
    channel = info.channels[0]
    irr = min(3.0, channel.max_irradiance_mw_cm2)
    pid = _id_for(path)
    name = pid.replace("-", " ").capitalize()
    emit = f'emit = {{ "{channel.wavelength_nm}nm" = "{irr:g} mW/cm^2" }}'
    return _TEMPLATE.format(
        name=name,
        file=path.name,
        profile=profile,
        pid=pid,
        id_pad=_pad(f'id = "{pid}"', 35),
        profile_pad=_pad(f'profile = "{profile}"', 35),
        wl=channel.wavelength_nm,
        irr=f"{irr:g}",
        emit_pad=_pad(emit, 35),
        zones=", ".join(f'"{z.name}"' for z in info.zones),
    )


def _from_protocol(path: Path, source: str) -> str:
    from lllt.protocol import load_protocol, resolve

    src = resolve(source)
    model = load_protocol(src)
    text = src.read_text(encoding="utf-8")
    pid = _id_for(path)
    text, n = re.subn(r'(?m)^id\s*=\s*"[^"\n]*"', f'id = "{pid}"', text, count=1)
    if n:
        text = re.sub(
            r'(?m)^name\s*=\s*"[^"\n]*"', f'name = "{model.name} (my copy)"', text, count=1
        )
    profile = model.meta.profile if model.meta and model.meta.profile else "reference-cap"
    head = (
        f"# A copy of {model.id}, written by `lllt protocol new`. Edit it, then check it with\n"
        f"#   lllt protocol check {path.name} --profile {profile}\n"
        "# Every field is described in docs/protocol-format.md.\n#\n"
    )
    return head + text


@protocol_app.command("new", epilog=_EXAMPLES)
@handle_errors
def new(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Protocol FILE to write (.toml).")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="PROTOCOL", help="Copy this shipped protocol ID or protocol FILE."
        ),
    ] = None,
    profile: Annotated[
        str,
        typer.Option("--profile", "-p", metavar="PROFILE", help=PROFILE_HELP),
    ] = "reference-cap",
    force: bool = typer.Option(False, "--force", help="Overwrite FILE if it exists."),
) -> None:
    """Write a commented protocol template to edit: from scratch, or a copy of a shipped
    protocol. It passes `lllt protocol check` as written."""
    import tempfile

    from lllt.errors import InvalidInput
    from lllt.protocol import load_protocol

    if file.suffix.lower() != ".toml":
        raise InvalidInput(
            f"{file}: a new protocol is written as TOML", advice="Name it FILE.toml."
        )
    if file.exists() and not force:
        raise InvalidInput(
            f"{file} exists already", advice="Choose another name, or add --force to overwrite."
        )
    if not file.parent.is_dir():
        raise InvalidInput(
            f"cannot write {file}: the folder {file.parent} does not exist",
            advice="Create the folder first, or choose another path.",
        )
    text = _from_protocol(file, source) if source else _from_scratch(file, profile)
    with tempfile.TemporaryDirectory() as tmp:  # validate before writing anything
        probe = Path(tmp) / file.name
        probe.write_text(text, encoding="utf-8")
        load_protocol(probe)
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot write {file}: {e.strerror or e}") from None
    print(f"wrote {file}; check it with: lllt protocol check {file} --profile "
          f"{profile if not source else _profile_of(source)}")  # fmt: skip


def _profile_of(source: str) -> str:
    from lllt.protocol import load_protocol, resolve

    model = load_protocol(resolve(source))
    return model.meta.profile if model.meta and model.meta.profile else "reference-cap"
