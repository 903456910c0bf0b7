"""What the verbs read from the environment: the home folder, the store, the ledger and the API key.

Settings are read here, at the edge, and handed down as plain values; the layers below
never look at the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from foretell.config import Settings

STORE_URL_ENV = "FORETELL_STORE_URL"
API_KEY_ENV = "FORETELL_API_KEY"
LEDGER_ENV = "FORETELL_LEDGER"
"""Where the prediction ledger is (a folder or an fsspec URL), when not FORETELL_HOME/ledger."""


def home_folder(home: Path | str | None) -> Path:
    return Path(home) if home is not None else Settings.from_env().home


def store_url() -> str | None:
    """Where predictions and entity tables live: FORETELL_STORE_URL (e.g. redis://host:6379/0), else SQLite in home."""
    return os.environ.get(STORE_URL_ENV) or None
