"""One ledger with known truth (monitorkit.py), built once for the monitor's tests."""

from __future__ import annotations

import pytest
from monitorkit import Built, build


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("monitor"))


@pytest.fixture(scope="session")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("monitor-drifted"), drifted=True)
