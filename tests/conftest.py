"""Shared fixtures: a real THUMBS_HOME per test, the licensed samples, and one
Prefect test harness (ephemeral server) for the whole session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.common.settings import PROJECT_ROOT

# The fuller licensed samples sit beside the project in CI. THUMBS_SHARED_DATA
# points elsewhere; pointing it at a missing folder shows what a user's clone runs.
SHARED_DATA = Path(os.environ.get("THUMBS_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))

# Prefect reads its settings at import time: set them before any test imports it.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (present in CI and for developers; absent in a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (it sits beside the project in CI)")
    return SHARED_DATA


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh THUMBS_HOME for one test."""
    path = tmp_path / "thumbs-home"
    path.mkdir()
    monkeypatch.setenv("THUMBS_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """One ephemeral Prefect server for every flow test (it takes ~20 s to start)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
