"""The firmware's own executables as devices, for tests and benchmarks.

- :class:`ServedFirmware` starts the host port of the firmware (``make -C firmware host``),
  whose UART is a TCP socket (or a pseudo-terminal) and whose plant is written in C, and
  reads the URL it prints (``socket://HOST:PORT`` or ``serial:///dev/pts/N``);
- :class:`QemuFirmware` starts the Cortex-M3 image (``make -C firmware qemu``) under
  ``qemu-system-arm -M mps2-an385`` with UART0 on a TCP port that QEMU picks, and gives
  ``socket://127.0.0.1:PORT``.

Both are context managers; ``stop()`` ends the process they started (and only it).
:func:`make` builds a firmware target in the checkout and raises :class:`ToolMissing`
when a tool it needs is not installed, so a test can skip (never in CI) with the reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

_URL = re.compile(r"\b((?:serial|socket)://\S+)")
_QEMU_PORT = re.compile(r"connection on: \S*tcp:[\w.]+:(\d+)")


class ToolMissing(RuntimeError):
    """A tool the firmware build or run needs is not installed."""


def checkout() -> Path:
    """The lllt checkout (the directory holding ``firmware/Makefile``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "firmware" / "Makefile").is_file():
            return parent
    raise ToolMissing("no firmware/Makefile: this lllt is not a checkout with the firmware")


def make(target: str, *, tools: Sequence[str] = ()) -> Path:
    """``make -C firmware TARGET`` (make skips what is up to date); the firmware directory."""
    root = checkout()
    for tool in ("make", *tools):
        if shutil.which(tool) is None:
            raise ToolMissing(f"`{tool}` is not installed (needed for `make -C firmware {target}`)")
    out = subprocess.run(
        ["make", "-s", "-C", str(root / "firmware"), target],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"`make -C firmware {target}` failed (exit {out.returncode}):\n{tail}")
    return root / "firmware"


def find_built(patterns: Sequence[str], *, executable: bool = False) -> Path:
    """The newest file under ``firmware/build`` matching one of ``patterns`` (globs)."""
    build = checkout() / "firmware" / "build"
    found: list[Path] = []
    for pattern in patterns:
        found += [
            p
            for p in build.rglob(pattern)
            if p.is_file() and (not executable or os.access(p, os.X_OK))
        ]
    if not found:
        raise RuntimeError(f"nothing matching {', '.join(patterns)} under {build}")
    return max(found, key=lambda p: p.stat().st_mtime)


class _Process:
    proc: subprocess.Popen[str]
    url: str
    _lines: list[str]

    def _drain(self, stream: object) -> None:
        # keep reading the child's output so that it never blocks on a full pipe
        assert stream is not None
        for line in stream:  # type: ignore[attr-defined]
            if len(self._lines) < 1000:
                self._lines.append(line)

    def output(self) -> str:
        return "".join(self._lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _restore_sigint() -> None:
    # a non-interactive shell starts jobs with SIGINT ignored; stop() relies on it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServedFirmware(_Process):
    """The host firmware executable serving its UART; ``url`` is where."""

    def __init__(self, *args: str, exe: Path | None = None) -> None:
        if exe is None:
            make("host", tools=("cc",))
            exe = find_built(["lllt-fw-host"], executable=True)
        self.exe = exe
        self._lines = []
        self.proc = subprocess.Popen(
            [str(exe), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_restore_sigint,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _URL.search(line)
        if match is None:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{exe.name} did not say where it serves: {line!r} {err[-500:]}")
        self.url = match.group(1).rstrip(",;")
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()


class QemuFirmware(_Process):
    """The Cortex-M3 image under QEMU (mps2-an385), UART0 on a TCP port; ``url`` is where.

    QEMU is started with ``wait=on``: the guest boots when the first client connects.
    ``guest`` are the image's own options (``--speed N``, ``--seed``, ``--faults``,
    ``--state``), passed by semihosting as ``firmware/port/qemu-mps2-an385/serve.py``
    passes them.
    """

    QEMU = "qemu-system-arm"

    def __init__(
        self,
        image: Path | None = None,
        *guest: str,
        extra: Sequence[str] = (),
    ) -> None:
        if shutil.which(self.QEMU) is None:
            raise ToolMissing(f"`{self.QEMU}` is not installed (apt-get install qemu-system-arm)")
        if image is None:
            make("qemu", tools=("arm-none-eabi-gcc",))
            image = find_built(["lllt-fw-an385.elf", "*.elf"])
        self.image = image
        self._lines = []
        semihosting: list[str] = []
        if guest:
            # QEMU's option syntax: a comma inside a value is written twice
            args = ",".join(f"arg={a.replace(',', ',,')}" for a in ["lllt-fw-an385", *guest])
            semihosting = ["-semihosting-config", f"enable=on,target=native,{args}"]
        self.proc = subprocess.Popen(
            [
                self.QEMU,
                "-M",
                "mps2-an385",
                "-nographic",
                "-monitor",
                "none",
                *semihosting,
                "-kernel",
                str(image),
                "-serial",
                "tcp:127.0.0.1:0,server=on,wait=on,nodelay=on",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_restore_sigint,
        )
        assert self.proc.stderr is not None
        # "QEMU waiting for connection on: disconnected:tcp:127.0.0.1:PORT,server=on"
        line = self.proc.stderr.readline()
        match = _QEMU_PORT.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"QEMU did not say where UART0 listens: {line!r}")
        self.url = f"socket://127.0.0.1:{match.group(1)}"
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()


# --- comparing two session logs of the same protocol ------------------------------------------

#: relative tolerance on fluence and duration between two devices (issue 8: within 1 %)
REL = 0.01


def _close(a: float, b: float, rel: float = REL, abs_tol: float = 2e-6) -> bool:
    return abs(a - b) <= max(abs_tol, rel * max(abs(a), abs(b)))


def _kinds(session: dict[str, object], source: str) -> list[str]:
    events = session.get("events") or []
    assert isinstance(events, list)
    return [str(e["kind"]) for e in events if e.get("source") == source]


def compare_sessions(ref: dict[str, object], other: dict[str, object]) -> list[str]:
    """Differences between two sessions of ``lllt export --format json`` (empty: the same).

    The same outcome, status, reason and exit code; the same phases and the same kinds of
    events in the same order (device and host); delivered fluence per channel, per
    wavelength and per phase, and the duration, within 1 %.
    """
    diffs: list[str] = []
    for key in ("protocol_id", "status", "outcome", "reason", "exit_code", "derated"):
        if ref.get(key) != other.get(key):
            diffs.append(f"{key}: {ref.get(key)!r} != {other.get(key)!r}")
    for key in ("delivered_fluence_by_channel_j_cm2", "delivered_fluence_j_cm2"):
        a = ref.get(key) or {}
        b = other.get(key) or {}
        assert isinstance(a, dict) and isinstance(b, dict)
        if set(a) != set(b):
            diffs.append(f"{key}: channels {sorted(a)} != {sorted(b)}")
            continue
        for k in a:
            if not _close(float(a[k]), float(b[k])):
                diffs.append(f"{key}[{k}]: {a[k]} != {b[k]} (more than 1 % apart)")
    da, db = ref.get("duration_s"), other.get("duration_s")
    if da is None or db is None or not _close(float(da), float(db), abs_tol=0.05):  # type: ignore[arg-type]
        diffs.append(f"duration_s: {da} != {db}")
    pa = ref.get("phases") or []
    pb = other.get("phases") or []
    assert isinstance(pa, list) and isinstance(pb, list)
    if [(p["name"], p["kind"]) for p in pa] != [(p["name"], p["kind"]) for p in pb]:
        diffs.append(f"phases: {[p['name'] for p in pa]} != {[p['name'] for p in pb]}")
    else:
        for x, y in zip(pa, pb, strict=True):
            fx = x.get("delivered_fluence_j_cm2") or {}
            fy = y.get("delivered_fluence_j_cm2") or {}
            for k in set(fx) | set(fy):
                if not _close(float(fx.get(k, 0.0)), float(fy.get(k, 0.0))):
                    diffs.append(f"phase {x['name']} fluence[{k}]: {fx.get(k)} != {fy.get(k)}")
    for source in ("device", "host"):
        ka, kb = _kinds(ref, source), _kinds(other, source)
        if ka != kb:
            diffs.append(f"{source} events: {ka} != {kb}")
    ra, rb = ref.get("device_record") or {}, other.get("device_record") or {}
    assert isinstance(ra, dict) and isinstance(rb, dict)
    if ra.get("outcome") != rb.get("outcome"):
        diffs.append(f"device record outcome: {ra.get('outcome')!r} != {rb.get('outcome')!r}")
    return diffs


def run_and_export(
    protocol: str, url: str, db: Path, *, research: bool = False, timeout_s: float = 900.0
) -> dict[str, object]:
    """``lllt run PROTOCOL --device URL --db DB --yes --json``, then the session as exported.

    Returns ``{"summary": <lllt run --json>, "session": <lllt export>, "wall_s": ...}``.
    """
    import json
    import sys
    import time

    cmd = [sys.executable, "-m", "lllt", "run", protocol, "--device", url, "--db", str(db)]
    cmd += ["--yes", "--json"] + (["--research"] if research else [])
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - t0
    try:
        summary = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError(
            f"lllt run {protocol} on {url} printed no JSON (exit {out.returncode}): "
            f"{out.stdout[-400:]} {out.stderr[-400:]}"
        ) from None
    exp = subprocess.run(
        [sys.executable, "-m", "lllt", "export", "--db", str(db), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    sessions = json.loads(exp.stdout)["sessions"]
    if len(sessions) != 1:
        raise RuntimeError(f"expected one session in {db}, found {len(sessions)}")
    return {"summary": summary, "session": sessions[0], "wall_s": wall, "exit": out.returncode}


__all__ = [
    "QemuFirmware",
    "ServedFirmware",
    "ToolMissing",
    "checkout",
    "compare_sessions",
    "find_built",
    "make",
    "run_and_export",
]
