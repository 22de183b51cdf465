"""A JSON-friendly form of messages (golden vectors, logs) and its inverse."""

from __future__ import annotations

import dataclasses
from enum import IntEnum, IntFlag
from typing import Any


def to_dict(obj: Any) -> Any:
    """A JSON-friendly form of a message or part of one (enums by name, bytes as hex)."""
    if isinstance(obj, IntFlag):
        return [m.name for m in type(obj) if m & obj and m.name]
    if isinstance(obj, IntEnum):
        return obj.name
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


def from_dict(cls: type[Any], data: Any) -> Any:
    """Inverse of :func:`to_dict` for a message class (or a nested dataclass)."""
    import typing

    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _from_json(hints[f.name], data[f.name])
    return cls(**kwargs)


def _from_json(hint: Any, value: Any) -> Any:
    import types
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        return _from_json(hint, value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in value)
        return tuple(_from_json(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type):
        if issubclass(hint, IntFlag):
            flag = hint(0)
            for name in value:
                flag |= hint[name]
            return flag
        if issubclass(hint, IntEnum):
            return hint[value] if isinstance(value, str) else hint(value)
        if hint is bytes:
            return bytes.fromhex(value)
        if dataclasses.is_dataclass(hint):
            return from_dict(hint, value)
        if hint is float:
            return float(value)
    return value
