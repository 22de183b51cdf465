"""Transports by URL scheme.

A device is a URL: ``sim://reference-cap?speed=max&seed=1``, ``serial:///dev/ttyACM0``,
``socket://127.0.0.1:7878``. Each scheme is one module, imported only when a URL of that
scheme is opened, so pyserial or the simulator cost nothing until used. Other packages
add schemes through the ``lllt.transports`` entry-point group
(``myscheme = "mypkg.module:MyTransport"``, a :class:`Transport` subclass).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from lllt.errors import URLError

if TYPE_CHECKING:
    from lllt.transport.base import Transport

#: scheme -> (module, class); modules are imported lazily
SCHEMES: dict[str, tuple[str, str]] = {
    "sim": ("lllt.transport.sim", "SimTransport"),
    "fw": ("lllt.transport.fw", "FwTransport"),
    "serial": ("lllt.transport.serial", "SerialTransport"),
    "socket": ("lllt.transport.socket", "SocketTransport"),
    "ble": ("lllt.transport.ble", "BleTransport"),
    "blesim": ("lllt.transport.ble", "BleSimTransport"),
}

FORMS = (
    "sim://PROFILE[?speed=max|N&seed=N&faults=SPEC&ambient=C]",
    "fw://PROFILE[?speed=max|N&seed=N&faults=SPEC&ambient=C]",
    "serial:///dev/ttyACM0[?baud=115200]",
    "socket://HOST:PORT",
    "ble://ADDRESS or ble://NAME[?timeout=20]",
    "blesim://PROFILE[?mtu=23|247&speed=max]",
)


@dataclass(frozen=True)
class DeviceURL:
    """A parsed device URL: scheme, target (profile, path or host:port) and options."""

    url: str
    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    def option(self, name: str, default: str | None = None) -> str | None:
        """The option's value, or ``default`` when the URL does not give it."""
        return self.options.get(name, default)


def parse_url(url: str) -> DeviceURL:
    """Split a device URL; raises URLError (exit 2) showing the expected forms."""
    text = (url or "").strip()
    if "://" not in text:
        raise URLError(
            f"{url!r} is not a device URL",
            advice="Expected one of: " + ", ".join(FORMS) + ". `lllt devices` lists what is here.",
        )
    try:
        parts = urlsplit(text)
    except ValueError as err:
        raise URLError(f"malformed device URL {url!r}: {err}") from None
    query = []
    for pair in parts.query.split("&") if parts.query else ():
        key, eq, value = pair.partition("=")
        if not key or not eq:
            raise URLError(
                f"malformed option {pair!r} in {url!r}", advice="Options are written key=value."
            )
        # unquote, but keep "+" literal: fault specs use it (head_off@60s+30s)
        query.append((unquote(key), unquote(value)))
    scheme = parts.scheme.lower()
    known = _known_schemes()
    if scheme not in known:
        raise URLError(
            f"unknown device URL scheme {scheme!r} in {url!r}",
            advice="Known schemes: "
            + ", ".join(sorted(known))
            + ". Expected one of: "
            + ", ".join(FORMS)
            + ".",
        )
    target = parts.netloc + parts.path
    options: dict[str, str] = {}
    for key, value in query:
        if key in options:
            raise URLError(f"option {key!r} is given twice in {url!r}")
        options[key] = value
    return DeviceURL(text, scheme, target, options)


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep.value for ep in entry_points(group="lllt.transports")}
    except Exception:  # a broken third-party distribution must not break lllt
        return {}


def _known_schemes() -> set[str]:
    return set(SCHEMES) | set(_entry_points())


def transport_class(scheme: str) -> type[Transport]:
    """The :class:`Transport` class of a URL scheme, built in or from the ``lllt.transports``
    entry points, its module imported now; URLError for a scheme nobody provides."""
    if scheme in SCHEMES:
        module_name, class_name = SCHEMES[scheme]
    else:
        spec = _entry_points().get(scheme)
        if spec is None:
            raise URLError(f"unknown device URL scheme {scheme!r}")
        module_name, _, class_name = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)  # type: ignore[no-any-return]


def make_transport(url: str | DeviceURL) -> Transport:
    """The (not yet opened) transport for a device URL; options are checked here."""
    parsed = url if isinstance(url, DeviceURL) else parse_url(url)
    cls = transport_class(parsed.scheme)
    return cls(parsed)


def wants_virtual_clock(url: str | DeviceURL) -> tuple[bool, float | None]:
    """(virtual, speed) for the event loop that should run a connection to ``url``.

    Only an in-process device (the simulator, or the firmware library under ``fw://``) runs
    on the virtual clock; anything with real I/O runs on asyncio's ordinary loop.
    """
    parsed = url if isinstance(url, DeviceURL) else parse_url(url)
    if parsed.scheme not in ("sim", "fw", "blesim"):
        return False, None
    from lllt.transport.sim import parse_speed

    return True, parse_speed(parsed.option("speed", "1"), parsed.url)


__all__ = ["FORMS", "SCHEMES", "DeviceURL", "make_transport", "parse_url", "transport_class"]
