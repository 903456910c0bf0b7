"""A registry home with the served test models (tests/unit/servedmodels.py) and entity tables, made once per session.

This file also puts tests/unit on the import path, where the registry loader finds `servedmodels`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servedmodels import load_tables, register_models


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("unit-home")
    register_models(home, tmp_path_factory.mktemp("unit-models"))
    return home


@pytest.fixture(scope="session")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Entity tables for the hybrid tests, loaded once; each test serves a copy (`servedmodels.hybrid_stack`)."""
    return load_tables(tmp_path_factory.mktemp("unit-tables") / "entities.db")
