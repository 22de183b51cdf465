"""Where the session log lives: ``--db PATH`` > ``LLLT_DB`` > the user data folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from lllt.store.schema import ENV_DB


def default_db_path() -> Path:
    """``sessions.db`` in the user data folder (platformdirs' ``user_data_path``)."""
    import platformdirs

    return platformdirs.user_data_path("lllt", appauthor=False) / "sessions.db"


def resolve_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--db PATH`` > ``LLLT_DB`` > the user data directory."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return default_db_path()
