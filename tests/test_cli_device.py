"""`lllt devices` and `lllt info` as a user runs them, good and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from conformance.conftest import Server

LLLT = [sys.executable, "-m", "lllt"]


def lllt(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*LLLT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def _same_device(d: dict) -> dict:
    # what a device says about itself, without how it was reached
    return {k: v for k, v in d.items() if k not in ("url", "link", "clock_rate", "boot_count")}


def test_info_json_describes_the_reference_cap() -> None:
    out = lllt("info", "--device", "sim://reference-cap", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert len(info["channels"]) == 8
    assert sorted(c["wavelength_nm"] for c in info["channels"]) == [655] * 4 + [735] * 4
    assert {c["zone"] for c in info["channels"]} == {"front", "top", "crown", "back"}
    assert info["limits"]["max_irradiance_mw_cm2"] == 10
    assert info["limits"]["cutoff_c"] == 42.5


def test_info_is_the_same_over_a_served_pty_and_tcp() -> None:
    local = json.loads(lllt("info", "--device", "sim://reference-cap", "--json").stdout)
    for mode in (["--pty"], ["--tcp", "127.0.0.1:0"]):
        server = Server(*mode, "--speed", "1")
        try:
            out = lllt("info", "--device", server.url, "--json")
        finally:
            server.stop()
        assert out.returncode == 0, out.stderr
        served = json.loads(out.stdout)
        assert served["url"].startswith("serial://" if mode == ["--pty"] else "socket://")
        assert _same_device(served) == _same_device(local)


def test_info_plain_text_names_channels_and_limits() -> None:
    out = lllt("info", "--device", "sim://laser-cap-678")
    assert out.returncode == 0
    assert "678 nm" in out.stdout and "laser" in out.stdout and "hard limits" in out.stdout


def test_devices_lists_the_simulators() -> None:
    out = lllt("devices", "--json", "--ble-scan", "0")
    assert out.returncode == 0
    data = json.loads(out.stdout)
    assert {s["profile"] for s in data["simulators"]} == {
        "reference-cap",
        "laser-cap-678",
        "led-helmet-rgb",
    }
    assert data["bluetooth"] == "not scanned (--ble-scan 0)" and data["ble"] == []


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("bogus://x", 2, "sim://"),
        ("not a url", 2, "Expected one of"),
        ("sim://reference-cap?colour=red", 2, "speed"),
        ("sim://reference-cap?speed=0", 2, "speed"),
        ("sim://reference-cap?faults=meltdown@1s", 2, "overtemp"),
        ("socket://localhost", 2, "HOST:PORT"),
        ("serial:///dev/does-not-exist", 3, "lllt devices"),
        ("socket://127.0.0.1:1", 3, "nothing answers"),
    ],
)
def test_bad_device_urls(url: str, code: int, words: str) -> None:
    out = lllt("info", "--device", url)
    assert out.returncode == code, out.stdout + out.stderr
    assert words in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3


def _pty_with(reply: bytes | None) -> tuple[str, int, int]:
    """A pseudo-terminal whose far end answers every write with ``reply`` (None: silence).

    The slave stays open here too, so that the far end never reads EIO before the client
    opens the port."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def serve() -> None:
        try:
            while data := os.read(master, 4096):
                if reply is not None and data.strip(b"\x00"):
                    os.write(master, reply)
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    return path, slave, master


def test_a_port_with_nothing_behind_it_exits_3_with_advice() -> None:
    path, slave, master = _pty_with(None)
    try:
        out = lllt("info", "--device", f"serial://{path}", "--timeout", "10")
    finally:
        os.close(slave)
        os.close(master)
    assert out.returncode == 3
    assert "nothing answered" in out.stderr and "switched on" in out.stderr


def test_garbage_from_the_device_is_counted_and_reported() -> None:
    path, slave, master = _pty_with(b"\x13\x37 garbage \xff\xfe\x00" * 3)
    try:
        out = lllt("info", "--device", f"serial://{path}", "--timeout", "10")
    finally:
        os.close(slave)
        os.close(master)
    assert out.returncode == 3  # never a valid answer
    assert "nothing answered" in out.stderr
    assert "bytes of garbage" in out.stderr  # counted and reported


def test_version_and_help() -> None:
    assert lllt("--version").stdout.startswith("lllt ")
    out = lllt("--help")
    assert out.returncode == 0
    for command in ("run", "info", "devices", "history", "protocol", "sim"):
        assert command in out.stdout
