"""Opening the session log: path resolution, WAL, schema version and migrations, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lllt import store as store_mod
from lllt.errors import StoreError
from lllt.store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, Store, resolve_db_path
from lllt.store import paths as store_paths

from ._support import T0, record_session


def test_new_log_is_created_with_parent_dirs_wal_and_current_schema(db_path: Path) -> None:
    assert not db_path.parent.exists()
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.journal_mode == "wal"
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_migrations_are_ordered_and_end_at_the_schema_version() -> None:
    versions = [v for v, _what, _sql in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == versions[-1] >= 2  # so that a previous version exists to migrate


def _make_previous_version(path: Path) -> None:
    """A log as the previous release wrote it: migrations up to N-1, one session in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    for version, _what, statements in MIGRATIONS[:-1]:
        for sql in statements:
            conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(
        """INSERT INTO sessions (uuid, created_at, started_at, ended_at, status, protocol_id,
            protocol_name, protocol_sha256, protocol_text, device_serial, device_model,
            device_url, simulated, research, device_json, planned_fluence_json,
            planned_channel_json, delivered_fluence_json, host_name, host_pid, host_token)
        VALUES ('u-1', ?, ?, ?, 'completed', 'old', 'Old protocol', '', 'x', 'CAP-9', 'm',
            'serial:///dev/x', 0, 0, '{"channels": [], "zones": []}', '{"655": 4.0}', '{}',
            '{"655": 3.9}', 'h', 1, 't')""",
        (T0, T0 + 1, T0 + 1500),
    )
    conn.close()


def test_log_of_the_previous_version_is_migrated_and_keeps_its_sessions(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    _make_previous_version(db_path)
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        (old,) = s.sessions()
        assert (old.uuid, old.protocol_id, old.delivered_fluence) == ("u-1", "old", {655: 3.9})
        assert old.interrupted_at is None and old.device_record == {}  # v2 columns
        new = record_session(s, T0 + 86400)  # and the migrated log takes new sessions
        assert [r.id for r in s.sessions()] == [new.id, old.id]


def test_log_of_a_newer_schema_says_upgrade_lllt(db_path: Path) -> None:
    Store.open(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError) as info:
        Store.open(db_path)
    assert "upgrade lllt" in str(info.value).lower()
    assert info.value.exit_code == 3


def test_garbage_file_is_a_store_error_with_advice(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(StoreError) as info:
        Store.open(db_path)
    assert str(db_path) in info.value.message
    assert "--db" in info.value.advice


def test_truncated_log_is_a_store_error(db_path: Path) -> None:
    with Store.open(db_path) as s:
        record_session(s)
    data = db_path.read_bytes()
    # keep the header, destroy the pages after it
    db_path.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    for suffix in ("-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)

    def read_all() -> None:
        with Store.open(db_path) as s:
            s.sessions()

    with pytest.raises(StoreError):  # at open or at the first read, never sqlite3's own error
        read_all()


def test_another_sqlite_file_is_not_taken_for_a_session_log(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE recipes (name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="not an lllt session log"):
        Store.open(db_path)
    raw = sqlite3.connect(db_path)  # and it was left as it was
    assert raw.execute("SELECT name FROM sqlite_master").fetchall() == [("recipes",)]
    raw.close()


def test_a_folder_is_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="folder"):
        Store.open(tmp_path)


def test_read_only_open_of_a_missing_log_creates_nothing(db_path: Path) -> None:
    with Store.open(db_path, create=False) as s:
        assert s.sessions() == []
        assert s.path == str(db_path)
    assert not db_path.exists() and not db_path.parent.exists()


def test_path_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLLT_DB", raising=False)
    monkeypatch.setattr(store_paths, "default_db_path", lambda: tmp_path / "default.db")
    assert resolve_db_path(None) == tmp_path / "default.db"
    monkeypatch.setenv("LLLT_DB", str(tmp_path / "env.db"))
    assert resolve_db_path(None) == tmp_path / "env.db"
    assert resolve_db_path(tmp_path / "explicit.db") == tmp_path / "explicit.db"


def test_default_path_is_in_the_user_data_dir() -> None:
    import platformdirs

    path = store_mod.default_db_path()
    assert path.name == "sessions.db"
    assert path.parent == platformdirs.user_data_path("lllt", appauthor=False)
