"""Shared fixtures: a real THUMBS_HOME per test and one Prefect test harness
(ephemeral server) for the whole session. Real rows: see samples.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Prefect reads its settings at import time: set them before any test imports it.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


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


# --- the reliability suite's summary line (tests/reliability/ledger.py) ---------------------
# Under pytest-xdist (`make test` runs two workers) each worker records its own figures and
# hands them to the controller when it finishes, which prints the sum.

def pytest_sessionfinish(session):
    from reliability import ledger

    if hasattr(session.config, "workeroutput"):  # an xdist worker
        session.config.workeroutput["reliability"] = ledger.figures()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from reliability import ledger

    if figures := getattr(node, "workeroutput", {}).get("reliability"):
        ledger.add(figures)


def pytest_terminal_summary(terminalreporter):
    from reliability import ledger

    if ledger.used():
        terminalreporter.write_sep("=", "reliability suite")
        terminalreporter.write_line(ledger.summary())
