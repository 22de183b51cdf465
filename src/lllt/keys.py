"""Device keys kept for the user: ``keys.toml`` in the user config directory.

One line per device, ``"SERIAL" = "64 hex digits"``. The file is the user's alone: it is
written with owner-only permissions (0600, in a 0700 directory) atomically, and a key
file that others can read is refused rather than used (anyone who can read it can
sign energy-adding requests for those caps). ``LLLT_KEYS`` overrides the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile

from lllt.errors import InvalidInput

KEY_SIZE = 32


def path() -> str:
    """The key file: ``$LLLT_KEYS``, else ``keys.toml`` in the user config directory."""
    override = os.environ.get("LLLT_KEYS")
    if override:
        return override
    from platformdirs import user_config_dir

    return os.path.join(user_config_dir("lllt"), "keys.toml")


def fingerprint(key: bytes) -> str:
    """A short name for a key that does not reveal it (SHA-256, first 8 bytes)."""
    return hashlib.sha256(b"lllt-key-fingerprint" + key).hexdigest()[:16]


def load(file: str | None = None) -> dict[str, bytes]:
    """serial -> key; {} when there is no key file. Refuses a file others can read."""
    import tomllib

    where = file or path()
    try:
        st = os.stat(where)
    except FileNotFoundError:
        return {}
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(
            f"{where}: the key file can be read by other users "
            f"(mode {stat.S_IMODE(st.st_mode):o}); it is not used",
            advice=f"Make it yours alone: chmod 600 {where}",
        )
    try:
        with open(where, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput(f"{where}: cannot read the key file: {err}") from None
    out = {}
    for serial, value in data.items():
        try:
            key = bytes.fromhex(str(value))
        except ValueError:
            key = b""
        if len(key) != KEY_SIZE:
            raise InvalidInput(
                f"{where}: the key for {serial} is not 64 hexadecimal digits",
                advice=f"Fix or remove that line (`lllt keys forget {serial}`).",
            )
        out[str(serial)] = key
    return out


def store(serial: str, key: bytes, file: str | None = None) -> str:
    """Add or replace the key of ``serial``; returns the file written."""
    if len(key) != KEY_SIZE:
        raise InvalidInput(f"a device key is {KEY_SIZE} bytes, not {len(key)}")
    where = file or path()
    keys = load(where)
    keys[serial] = key
    _write(where, keys)
    return where


def forget(serial: str, file: str | None = None) -> bool:
    """Remove the key of ``serial``; False when there was none."""
    where = file or path()
    keys = load(where)
    if serial not in keys:
        return False
    del keys[serial]
    _write(where, keys)
    return True


def _write(where: str, keys: dict[str, bytes]) -> None:
    directory = os.path.dirname(os.path.abspath(where))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    lines = ["# lllt device keys: serial = key (keep this file private)\n"]
    for serial in sorted(keys):
        escaped = serial.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'"{escaped}" = "{keys[serial].hex()}"\n')
    fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.replace(tmp, where)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = ["KEY_SIZE", "fingerprint", "forget", "load", "path", "store"]
