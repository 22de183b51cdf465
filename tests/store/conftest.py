"""Fixtures for the session log tests (helpers live in ``_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lllt.store import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "log" / "sessions.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path)
    yield s
    s.close()
