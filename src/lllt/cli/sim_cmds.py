"""``lllt sim serve``: a simulated cap behind a pseudo-terminal or a TCP port.

The device runs on lllt's virtual clock paced at ``--speed`` × real time, so a served
simulator can run a 25-minute session in a minute while its bytes move through a real
pty or socket. ``speed=max`` needs the client on the same virtual clock (lockstep), which
only the in-process ``sim://`` transport has, so it is refused here. The simulator and the
clock are imported inside the command, keeping ``lllt --help`` fast.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import typer

from lllt.cli._app import PROFILE_HELP, app, epilog, handle_errors
from lllt.errors import InvalidInput

sim_app = typer.Typer(
    name="sim",
    help="Run the device simulator for other programs to talk to.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(sim_app, name="sim")

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")


def parse_speed(text: str) -> float:
    """``--speed`` as a factor of real time (``10`` or ``10x``). InvalidInput for ``max`` or
    ``inf`` (in-process only) and for anything but a positive finite number."""
    value = text.strip().lower()
    if value in ("max", "inf"):
        raise InvalidInput(
            "--speed max is for the in-process simulator only",
            advice="A served simulator talks to a client on the real clock; use a factor "
            "such as --speed 1 (real time) or --speed 50, or sim://PROFILE?speed=max in-process.",
        )
    try:
        speed = float(value.removesuffix("x"))
    except ValueError:
        speed = math.nan
    if not (speed > 0 and math.isfinite(speed)):
        raise InvalidInput(
            f"--speed {text!r} is not a speed", advice="Use a positive factor: 1, 10, 0.5."
        )
    return speed


def parse_host_port(text: str, option: str = "--tcp") -> tuple[str, int]:
    """``HOST:PORT`` (``[ADDRESS]:PORT`` for IPv6) as (host, port); InvalidInput naming
    ``option`` when it is not that form or the port is above 65535."""
    m = _HOST_PORT.match(text.strip())
    if m is None or int(m["port"]) > 65535:
        raise InvalidInput(
            f"{option} {text!r} is not HOST:PORT",
            advice=f"Expected e.g. {option} 127.0.0.1:7878, {option} [::1]:7878, or port 0 "
            "for any free port.",
        )
    return (m["v6"] or m["host"]), int(m["port"])


def parse_key(text: str) -> bytes:
    """A 32-byte device key from 64 hex digits; InvalidInput otherwise."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InvalidInput(
            "--key is not a 32-byte key in hex",
            advice="Expected 64 hexadecimal digits (docs/wire-protocol.md, Authentication).",
        )
    return key


@sim_app.command(
    "serve",
    epilog=epilog(
        "lllt sim serve --pty",
        "lllt sim serve --tcp 127.0.0.1:7878 --profile led-helmet-rgb --speed 10",
    ),
)
@handle_errors
def serve(
    pty: Annotated[bool, typer.Option("--pty", help="Serve on a new pseudo-terminal.")] = False,
    tcp: Annotated[
        str | None, typer.Option("--tcp", metavar="HOST:PORT", help="Serve on a TCP port.")
    ] = None,
    profile: Annotated[str, typer.Option(metavar="PROFILE", help=PROFILE_HELP)] = ("reference-cap"),
    faults: Annotated[
        str,
        typer.Option(
            metavar="FAULTS", help="Faults, e.g. overtemp@300s,led_open:3@10s,corrupt:0.01."
        ),
    ] = "",
    speed: Annotated[
        str, typer.Option(metavar="N", help="Device time per real time: 1, 10, 0.5.")
    ] = "1",
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    ambient: Annotated[float, typer.Option(help="Ambient temperature in °C.")] = 25.0,
    key: Annotated[
        str | None,
        typer.Option(metavar="HEX", help="Device key, 64 hex digits (default: development key)."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="FILE keeping the device's records between runs."),
    ] = None,
    link: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="With --pty: also make this symlink to the terminal."),
    ] = None,
    button_held: Annotated[
        bool,
        typer.Option(
            "--button-held",
            help="Model the cap's button held: it takes a new key (lllt pair) over --pty/--tcp.",
        ),
    ] = False,
    ble: Annotated[
        str | None,
        typer.Option(
            metavar="TRANSPORT",
            help="Serve as a BLE peripheral on a Bumble HCI transport, e.g. usb:0.",
        ),
    ] = None,
) -> None:
    """Serve a simulated cap until Ctrl-C (prints where on one line first)."""
    if [pty, tcp is not None, ble is not None].count(True) != 1:
        raise InvalidInput(
            "give exactly one of --pty, --tcp HOST:PORT and --ble TRANSPORT",
            advice="e.g. `lllt sim serve --pty`, `lllt sim serve --tcp 127.0.0.1:7878` or "
            "`lllt sim serve --ble usb:0` (a USB Bluetooth dongle, through Bumble).",
        )
    if link is not None and not pty:
        raise InvalidInput("--link goes with --pty")
    factor = parse_speed(speed)
    address = parse_host_port(tcp) if tcp is not None else None
    device_key = parse_key(key) if key is not None else None
    if not -20.0 <= ambient <= 50.0:
        raise InvalidInput(f"--ambient {ambient:g} is not between -20 and 50 °C")
    device = _make_device(profile, faults, seed, ambient, device_key, factor, state)
    device.button_held = button_held

    from lllt import clock

    if ble is not None:
        clock.run(_serve_ble(device, profile, ble, factor, seed), virtual=True, speed=factor)
        return
    clock.run(_serve(device, profile, address, link, factor, seed), virtual=True, speed=factor)


def _make_device(
    profile: str,
    faults: str,
    seed: int,
    ambient: float,
    key: bytes | None,
    speed: float,
    state: str | None,
) -> Any:
    from lllt_sim.device import SimDevice
    from lllt_sim.faults import parse_faults
    from lllt_sim.profiles import ProfileError, profile_names
    from lllt_sim.records import StateFileError

    try:
        fault_list = parse_faults(faults)
    except ValueError as err:
        raise InvalidInput(f"--faults: {err}") from None
    try:
        return SimDevice(
            profile,
            seed=seed,
            faults=fault_list,
            ambient_c=ambient,
            key=key,
            clock_rate=speed,
            state_file=state,
        )
    except ProfileError:
        raise InvalidInput(
            f"unknown simulator profile {profile!r}",
            advice="Known profiles: " + ", ".join(profile_names()) + ".",
        ) from None
    except StateFileError as err:
        raise InvalidInput(str(err), advice="Give another --state file, or remove it.") from None
    except ValueError as err:  # a fault naming a zone or channel this profile lacks
        raise InvalidInput(f"--faults: {err}") from None


async def _serve(
    device: Any,
    profile: str,
    address: tuple[str, int] | None,
    link: str | None,
    speed: float,
    seed: int,
) -> None:
    import asyncio
    import signal

    from lllt_sim.serve import serve_pty, serve_tcp

    try:
        if address is None:
            served = await serve_pty(device, link_path=link)
        else:
            served = await serve_tcp(device, *address)
    except OSError as err:
        where = f"{address[0]}:{address[1]}" if address else "a pseudo-terminal"
        raise InvalidInput(f"cannot serve on {where}: {err.strerror or err}") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, device.close)
    print(
        f"serving {profile} at {served.url} (speed {speed:g}x, seed {seed}); Ctrl-C to stop",
        flush=True,
    )
    try:
        await device.run()
    finally:
        served.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve_ble(device: Any, profile: str, transport: str, speed: float, seed: int) -> None:
    import asyncio
    import contextlib
    import signal

    try:
        from lllt_sim.ble import serve_ble
    except ImportError:
        raise InvalidInput(
            "--ble needs Bumble", advice="pip install 'lllt[sim]' (or 'lllt[test]')."
        ) from None
    try:
        peripheral, hci = await asyncio.wait_for(serve_ble(device, transport), 20.0)
    except TimeoutError:
        raise InvalidInput(
            f"--ble {transport}: the Bluetooth controller did not answer within 20 s",
            advice="Check the dongle or the transport (usb:0, serial:/dev/ttyACM0,1000000, "
            "tcp-client:HOST:PORT).",
        ) from None
    except Exception as err:  # Bumble raises many kinds for a transport that cannot open
        raise InvalidInput(
            f"--ble {transport}: cannot open this Bluetooth transport: {err}",
            advice="Bumble transport names look like usb:0, serial:/dev/ttyACM0,1000000 or "
            "tcp-client:127.0.0.1:9000.",
        ) from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, device.close)
    print(
        f"serving {profile} at ble://{peripheral.name} on {transport} "
        f"(speed {speed:g}x, seed {seed}); Ctrl-C to stop",
        flush=True,
    )
    try:
        await device.run()
    finally:
        await peripheral.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hci.close(), 2.0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
