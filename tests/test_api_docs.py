"""The Python API keeps its docstrings: researchers read them with ``help(lllt.Cap)``.

Every name in ``lllt.__all__`` (resolved through ``lllt.__getattr__``, which imports on
first use) has a docstring of its own, and so has every public method and property of
those that are classes, wherever in lllt it is defined (``PreflightRefused.to_dict`` is
``LlltError``'s). Members that come from the standard library or pydantic
(``Exception.add_note``, ``BaseModel.model_dump``) are theirs to document, not ours.

"Of its own" is checked with care, because Python fills the gaps: ``@dataclass`` gives an
undocumented class its signature as ``__doc__``, and ``inspect.getdoc`` (what ``help``
shows) hands an undocumented method the docstring of the method it overrides. An override
may share the docstring of an lllt method it overrides (it keeps that method's contract,
as the wire messages' ``parse`` and ``payload`` share ``lllt.wire.Message``'s); a
docstring borrowed from the standard library or pydantic never counts, since it would
describe their behaviour, not lllt's.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import lllt

#: names in ``__all__`` that are data, not documented objects
DATA = {"__version__"}

API = [name for name in lllt.__all__ if name not in DATA]


def _in_lllt(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module == "lllt" or module.startswith("lllt.")


def _text(doc: object) -> str:
    return doc.strip() if isinstance(doc, str) else ""


def _class_doc(cls: type) -> str:
    """The class's own docstring; not one ``@dataclass`` made up from its signature."""
    doc = _text(cls.__dict__.get("__doc__"))
    if doc and dataclasses.is_dataclass(cls):
        try:
            signature = str(inspect.signature(cls)).replace(" -> None", "")
        except (TypeError, ValueError):
            signature = ""
        if doc == cls.__name__ + signature:
            return ""
    return doc


def _function(attr: Any) -> Any | None:
    """The function behind a class attribute that is a method or a property, else None."""
    if isinstance(attr, staticmethod | classmethod):
        return attr.__func__
    if isinstance(attr, property):
        return attr.fget
    if isinstance(attr, functools.cached_property):
        return attr.func
    if inspect.isfunction(attr):
        return attr
    return None


def _members(cls: type) -> Iterator[tuple[str, type, Any]]:
    """(name, defining class, function) for each public method and property of ``cls``
    that is defined in lllt, as ``cls`` resolves it (an override hides what it overrides)."""
    seen: set[str] = set()
    for owner in cls.__mro__:
        for name, attr in vars(owner).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            func = _function(attr)
            if func is not None and _in_lllt(owner):
                yield name, owner, func


def _shared_doc(cls: type, owner: type, name: str) -> str:
    """The docstring an override without one shares: that of the nearest method it
    overrides that has one, if that method is lllt's ("" otherwise)."""
    mro = cls.__mro__
    for base in mro[mro.index(owner) + 1 :]:
        if name not in vars(base):
            continue
        func = _function(vars(base)[name])
        doc = _text(func.__doc__) if func is not None else ""
        if doc:
            return doc if _in_lllt(base) else ""
    return ""


def _missing(name: str) -> list[str]:
    obj = getattr(lllt, name)  # through lllt.__getattr__ on first use
    if inspect.isclass(obj):
        missing = [] if _class_doc(obj) else [name]
        for member, owner, func in _members(obj):
            if _text(func.__doc__) or _shared_doc(obj, owner, member):
                continue
            missing.append(f"{name}.{member} ({owner.__module__}.{owner.__qualname__})")
        return missing
    assert callable(obj), f"lllt.{name} is neither a class nor a function: add it to DATA"
    return [] if _text(obj.__doc__) else [name]


@pytest.mark.parametrize("name", API)
def test_every_api_name_and_its_members_have_a_docstring(name: str) -> None:
    missing = _missing(name)
    assert not missing, "no docstring of its own: " + ", ".join(missing)


def test_the_walk_finds_the_api() -> None:
    """The checks above look at what a script uses, not at an empty list."""
    found = {
        f"{name}.{member}"
        for name in API
        if inspect.isclass(getattr(lllt, name))
        for member, _, _ in _members(getattr(lllt, name))
    }
    expected = {
        "Cap.connect",  # a classmethod
        "Cap.new_plan_id",  # a staticmethod
        "Cap.info",  # a property
        "Cap.report_records",  # an async generator
        "SyncCap.stream",
        "SessionOutcome.raise_for_status",
        "Observer.finished",
        "Protocol.numbers",
        "Protocol.expected_duration_s",
        "Limits.to_dict",
        "Reason.to_dict",
        "PreflightRefused.to_dict",  # defined in LlltError
    }
    assert expected <= found, expected - found
    assert not any(m.startswith("LlltError.add_note") for m in found)  # the stdlib's
    assert not any(m.startswith("Protocol.model_dump") for m in found)  # pydantic's
    assert set(lllt.__all__) - DATA == set(API)


def test_generated_and_borrowed_docstrings_do_not_count() -> None:
    """A dataclass's made-up signature and a docstring borrowed from the standard library
    are not docstrings of lllt's own; one shared with the lllt method overridden is."""

    @dataclasses.dataclass
    class Undocumented:
        x: int = 0

    assert Undocumented.__doc__  # dataclasses filled it in ...
    assert _class_doc(Undocumented) == ""  # ... which is not ours

    class Tally(collections.Counter[str]):
        def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
            return []

    Tally.__module__ = "lllt.example"
    assert inspect.getdoc(Tally().most_common)  # help() would show the stdlib's words ...
    assert _shared_doc(Tally, Tally, "most_common") == ""  # ... which do not count

    from lllt import wire

    parse = vars(wire.Start)["parse"].__func__
    assert not parse.__doc__  # the wire messages share Message's docstrings, which count
    assert _shared_doc(wire.Start, wire.Start, "parse") == _text(wire.Message.parse.__doc__)
