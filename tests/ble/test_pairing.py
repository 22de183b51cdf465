"""Keys: provisioned over the wired link only, in a state a person causes; stored 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lllt import keys
from lllt.errors import InvalidInput
from lllt_sim.harness import ServedSimulator


def lllt(*args: str, keyfile: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LLLT_KEYS=str(keyfile))
    env.pop("LLLT_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "lllt", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_pair_over_the_wired_link_then_only_with_the_button_held(tmp_path: Path) -> None:
    keyfile = tmp_path / "cfg" / "keys.toml"
    with ServedSimulator("--tcp", "127.0.0.1:0") as fresh:
        out = lllt("pair", fresh.url, keyfile=keyfile)
        assert out.returncode == 0, out.stderr
        assert "paired SIM-REF-0001" in out.stdout
        assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
        key = keys.load(str(keyfile))["SIM-REF-0001"]
        assert len(key) == 32
        # the cap now has a key and its button is not held: no new key
        again = lllt("pair", fresh.url, keyfile=keyfile)
        assert again.returncode == 3
        assert "hold the cap's button" in again.stderr.lower()
        assert keys.load(str(keyfile))["SIM-REF-0001"] == key  # unchanged
        listed = lllt("keys", keyfile=keyfile)
        assert "SIM-REF-0001" in listed.stdout and key.hex() not in listed.stdout
        assert keys.fingerprint(key) in listed.stdout
    with ServedSimulator("--tcp", "127.0.0.1:0", "--key", "11" * 32, "--button-held") as held:
        out = lllt("pair", held.url, keyfile=keyfile)
        assert out.returncode == 0, out.stderr
        assert keys.load(str(keyfile))["SIM-REF-0001"] != key
    forgot = lllt("keys", "forget", "SIM-REF-0001", keyfile=keyfile)
    assert forgot.returncode == 0
    assert keys.load(str(keyfile)) == {}
    assert lllt("keys", "forget", "SIM-REF-0001", keyfile=keyfile).returncode == 2


def test_pair_with_a_wrong_key_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.toml"
    with ServedSimulator("--tcp", "127.0.0.1:0", "--key", "22" * 32) as served:
        out = lllt("pair", served.url, "--key", "33" * 32, keyfile=keyfile)
        assert out.returncode == 3
        assert "does not hold this key" in out.stderr
        assert not keyfile.exists()
        ok = lllt("pair", served.url, "--key", "22" * 32, keyfile=keyfile)
        assert ok.returncode == 0, ok.stderr


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.toml"
    keys.store("X", bytes(32), str(keyfile))
    os.chmod(keyfile, 0o644)
    with pytest.raises(InvalidInput) as err:
        keys.load(str(keyfile))
    assert "chmod 600" in err.value.advice
