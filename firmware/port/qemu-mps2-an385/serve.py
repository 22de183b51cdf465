#!/usr/bin/env python3
"""Serve the lllt firmware under QEMU (mps2-an385, Cortex-M3) on a TCP socket.

    python firmware/port/qemu-mps2-an385/serve.py --speed 10
    serving reference-cap at socket://127.0.0.1:40123 (speed 10x, qemu mps2-an385); Ctrl-C to stop

Then ``lllt run PROTOCOL --device socket://127.0.0.1:40123``. The first line says where
it serves (as ``lllt sim serve`` and ``lllt-fw-host`` do). The image is
``firmware/build/qemu/lllt-fw-an385.elf`` (``make -C firmware qemu``). QEMU listens with
``server=on,wait=on,nodelay=on``: the guest boots when the first client connects, and
Nagle is off (without ``nodelay`` a round trip takes ~44 ms). Options reach the guest
through semihosting: --speed (1-100: SysTick runs that much faster), --seed, --faults
(the simulator's grammar), --state (a host file keeping records, boot count and the
device secret across runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

ELF = Path(__file__).resolve().parents[2] / "build" / "qemu" / "lllt-fw-an385.elf"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def command(elf: Path, host: str, port: int, guest_args: list[str]) -> list[str]:
    # QEMU option syntax: a comma inside a value is written twice
    arg = ",".join(f"arg={a.replace(',', ',,')}" for a in ["lllt-fw-an385", *guest_args])
    return [
        "qemu-system-arm",
        "-M",
        "mps2-an385",
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        f"enable=on,target=native,{arg}",
        "-serial",
        f"tcp:{host}:{port},server=on,wait=on,nodelay=on",
        "-kernel",
        str(elf),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--speed", type=int, default=1, help="device time x real time, 1-100")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--faults", default="", help="e.g. overtemp@300s,reboot@1min")
    ap.add_argument("--state", default="", help="host file for the persistent storage")
    ap.add_argument("--elf", type=Path, default=ELF)
    a = ap.parse_args()
    if not 1 <= a.speed <= 100:
        ap.error("--speed must be a whole factor from 1 to 100")
    if not a.elf.exists():
        ap.error(f"{a.elf} does not exist: run make -C firmware qemu")
    if shutil.which("qemu-system-arm") is None:
        ap.error("qemu-system-arm not found: apt-get install qemu-system-arm")
    if " " in a.faults + a.state:
        ap.error("--faults and --state may not hold spaces (the guest splits its arguments there)")
    port = a.port or free_port(a.host)
    guest = ["--speed", str(a.speed), "--seed", str(a.seed)]
    if a.faults:
        guest += ["--faults", a.faults]
    if a.state:
        guest += ["--state", os.path.abspath(a.state)]
    proc = subprocess.Popen(
        command(a.elf, a.host, port, guest),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "QEMU waiting for connection on: ..."
    if "waiting for connection" not in line:
        print(f"qemu did not start: {line.strip()}", file=sys.stderr)
        proc.kill()
        return 1
    print(
        f"serving reference-cap at socket://{a.host}:{port} (speed {a.speed}x, "
        f"qemu mps2-an385); Ctrl-C to stop",
        flush=True,
    )

    def stop(*_: object) -> None:
        proc.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for out in proc.stdout:  # the guest's semihosting messages
        print(out, end="", file=sys.stderr)
    return proc.wait() and 0


if __name__ == "__main__":
    raise SystemExit(main())
