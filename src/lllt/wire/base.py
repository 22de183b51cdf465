"""The :class:`Message` base class and the fixed-point field helpers messages share."""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from lllt.wire.constants import TEMP_UNKNOWN, WireError
from lllt.wire.enums import MsgType


def _irr(v: float) -> int:  # mW/cm² -> 0.01 mW/cm² (u16)
    return _clamp(round(v * 100), 0, 0xFFFF)


def _fl(v: float) -> int:  # J/cm² -> µJ/cm² (u32)
    return _clamp(round(v * 1_000_000), 0, 0xFFFFFFFF)


def _temp(v: float | None) -> int:  # °C -> 0.01 °C (i16); None -> unknown
    if v is None:
        return TEMP_UNKNOWN
    return _clamp(round(v * 100), -32767, 32767)


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def _str(s: str) -> bytes:
    b = s.encode("utf-8")[:255]
    return bytes((len(b),)) + b


def _take_str(buf: bytes, off: int) -> tuple[str, int]:
    n = buf[off]
    end = off + 1 + n
    if end > len(buf):
        raise WireError("string runs past the end of the payload")
    return buf[off + 1 : end].decode("utf-8", errors="replace"), end


class Message:
    """Base of every message; ``TYPE`` is its :class:`MsgType`.

    Each message is a frozen dataclass in engineering units (mW/cm², J/cm², °C, Hz, %); a
    field in another unit says so in its name (``duration_ms``, ``derate_permille``).
    :meth:`payload` and :meth:`parse` convert it to and from the wire's fixed-point layout
    (docs/wire-protocol.md); every message with fields overrides both for its own layout,
    and the overrides share the docstrings below.
    """

    TYPE: ClassVar[MsgType]

    def payload(self) -> bytes:
        """The message's payload on the wire: its fields in the layout of its type,
        little-endian, quantities as fixed-point integers (no header, CRC or auth trailer).
        Irradiance, fluence and temperature are rounded to the wire's step (0.01 mW/cm²,
        µJ/cm², 0.01 °C) and clamped to the field's range. Here, for a message without
        fields: empty."""
        return b""

    @classmethod
    def parse(cls, payload: bytes) -> Message:
        """The message a received payload encodes (any auth trailer already removed), in
        engineering units; WireError when the payload does not fit the type's layout. Here,
        for a message without fields: only an empty payload is accepted."""
        if payload:
            raise WireError(f"{cls.TYPE.name} takes no payload, got {len(payload)} bytes")
        return cls()


def _fixed(cls: type, size: int, payload: bytes) -> None:
    if len(payload) != size:
        raise WireError(f"{cls.TYPE.name} payload must be {size} bytes, got {len(payload)}")  # type: ignore[attr-defined]


def _enum(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise WireError(f"{value} is not a valid {cls.__name__}") from None


_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
