"""One demo home and one `foretell serve` over it for every dashboard test in this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from uikit import make_home, server


@pytest.fixture(scope="package")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-files")


@pytest.fixture(scope="package")
def home(tmp_path_factory: pytest.TempPathFactory, scratch: Path) -> Path:
    return make_home(tmp_path_factory.mktemp("ui-home"), scratch)


@pytest.fixture(scope="package")
def url(home: Path) -> Iterator[str]:
    """A server for every model with a production alias (churn, movies, other, clf), moved aliases seen at once."""
    with server(home, "--reload-seconds", "0.2") as base:
        yield base
