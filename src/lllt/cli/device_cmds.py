"""``lllt devices`` and ``lllt info``: what can be reached, and what a device says it is."""

from __future__ import annotations

from typing import Any

import typer

from lllt.cli._app import DEVICE_HELP, JSON_HELP, app, epilog, err, handle_errors, print_json


def run_on_device_loop(url: str, main: Any) -> Any:
    """Run ``main()`` (a coroutine function) on the loop the device URL needs (virtual for
    sim://); the URL is checked before the coroutine exists."""
    from lllt import clock
    from lllt.transport import wants_virtual_clock

    virtual, speed = wants_virtual_clock(url)
    return clock.run(main(), virtual=virtual, speed=speed)


def _serial_ports() -> list[dict[str, Any]]:
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover - pyserial is a dependency
        return []
    ports = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        ports.append(
            {
                "url": f"serial://{p.device}",
                "device": p.device,
                "description": p.description,
                "vid": f"{p.vid:04x}" if p.vid is not None else None,
                "pid": f"{p.pid:04x}" if p.pid is not None else None,
                "serial_number": p.serial_number,
            }
        )
    return ports


@app.command(epilog=epilog("lllt devices", "lllt devices --json"))
@handle_errors
def devices(
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    ble_scan: float = typer.Option(
        3.0, "--ble-scan", metavar="SECONDS", help="Seconds to scan for BLE caps (0: none)."
    ),
) -> None:
    """List the devices that can be reached: serial ports, BLE caps and simulators."""
    from lllt.wire.profiles import load_device_profile, profile_names

    ports = _serial_ports()
    sims = []
    for name in profile_names():
        p = load_device_profile(name)
        sims.append(
            {
                "url": f"sim://{name}",
                "profile": name,
                "model": p.model,
                "description": p.description,
            }
        )
    caps, why = _ble_caps(ble_scan)
    bluetooth = why if why is not None else f"{len(caps)} lllt cap(s) in range"
    if json_out:
        print_json({"serial": ports, "simulators": sims, "bluetooth": bluetooth, "ble": caps})
        return
    print("Serial ports:")
    if not ports:
        print("  none found")
    for port in ports:
        ids = f" [{port['vid']}:{port['pid']}]" if port["vid"] else ""
        print(f"  {port['url']:<32} {port['description']}{ids}")
    print("Simulators (add ?speed=max to run sessions as fast as possible):")
    for sim in sims:
        print(f"  {sim['url']:<32} {sim['description']}")
    if why is not None:
        print(f"Bluetooth: {why}")
        return
    print(f"Bluetooth LE caps (scanned {ble_scan:g} s):")
    if not caps:
        print("  none in range")
    for cap in caps:
        print(f"  {cap['url']:<32} {cap['name']} (RSSI {cap['rssi']} dBm)")


def _ble_caps(seconds: float) -> tuple[list[dict[str, Any]], str | None]:
    """Caps advertising the lllt service, or (nothing, one line on why BLE is unusable)."""
    if seconds <= 0:
        return [], "not scanned (--ble-scan 0)"
    import asyncio

    from lllt.transport.ble import scan

    return asyncio.run(scan(seconds))


@app.command(
    epilog=epilog(
        "lllt info --device sim://reference-cap", "lllt info -d serial:///dev/ttyACM0 --json"
    )
)
@handle_errors
def info(
    device: str = typer.Option(..., "--device", "-d", metavar="URL", help=DEVICE_HELP),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    timeout: float = typer.Option(5.0, metavar="SECONDS", help="Seconds to wait for the device."),
) -> None:
    """Show what a device says it is: model, versions, channels and hard limits."""
    from lllt.device import Cap

    async def main() -> tuple[dict[str, Any], dict[str, int]]:
        cap = await Cap.connect(device)
        try:
            return cap.info.to_dict(), cap.link_stats()
        finally:
            await cap.close()

    data, stats = run_on_device_loop(device, lambda: _bounded(main(), timeout))
    data["url"] = device
    garbage = stats["bytes_dropped"] + stats["malformed"]
    if json_out:
        data["link"] = stats
        print_json(data)
    else:
        _print_info(data)
    if garbage:
        err(
            f"warning: {stats['bytes_dropped']} bytes of garbage and {stats['malformed']} "
            f"malformed frames from the device were dropped"
        )


async def _bounded(coro: Any, timeout: float) -> Any:
    import asyncio

    from lllt.errors import DeviceTimeout

    try:
        return await asyncio.wait_for(coro, timeout)
    except DeviceTimeout:
        raise  # already says what did not answer
    except TimeoutError:
        raise DeviceTimeout(f"the device did not finish answering within {timeout:g} s") from None


def _print_info(d: dict[str, Any]) -> None:
    kind = "simulated" if d["simulated"] else "device"
    print(f"{d['model']} ({kind}), serial {d['serial']}")
    print(f"  firmware {d['firmware']}, wire protocol {d['protocol']}, url {d['url']}")
    print("  channels:")
    for c in d["channels"]:
        print(
            f"    {c['id']:>3}  {c['wavelength_nm']} nm  {c['zone']:<8} "
            f"max {c['max_irradiance_mw_cm2']:g} mW/cm²  {c['emitters']} × {c['kind']} "
            f"({c['emitter_max_mw']:g} mW each)"
        )
    lim = d["limits"]
    print("  hard limits (enforced by the device):")
    print(f"    irradiance ≤ {lim['max_irradiance_mw_cm2']:g} mW/cm² per channel")
    print(f"    session ≤ {lim['max_session_s'] / 60:g} min, ≤ {lim['max_fluence_j_cm2']:g} J/cm²")
    print(
        f"    thermal cut-off at {lim['cutoff_c']:g} °C reading "
        f"(sensor uncertainty ±{lim['sensor_uncertainty_c']:g} °C)"
    )
    print(f"    off the head: pause, abort after {lim['head_off_abort_s']:g} s")
