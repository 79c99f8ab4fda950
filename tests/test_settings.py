"""tasks/common/settings.py: where the shipped files are found in a checkout and in
an installed wheel, and releasing what a failed run's frames hold."""
from __future__ import annotations

import traceback
import weakref
from pathlib import Path

import pytest

from tasks.common.settings import (PROJECT_ROOT, SHIPPED_ROOT, WAREHOUSE_SQL, release_failed_run, release_frames,
                                   shipped_root)


def test_a_checkout_reads_its_own_files():
    assert shipped_root() == SHIPPED_ROOT == PROJECT_ROOT
    assert sorted(WAREHOUSE_SQL.glob("migrations/*.sql"))
    assert (SHIPPED_ROOT / "examples" / "sources.yaml").is_file()


def test_an_installed_wheel_reads_thumbs_data(tmp_path: Path):
    """setup.py's layout: the packages and `thumbs_data/` side by side in site-packages."""
    (tmp_path / "tasks").mkdir()
    assert shipped_root(tmp_path) == tmp_path
    (tmp_path / "thumbs_data").mkdir()
    assert shipped_root(tmp_path) == tmp_path / "thumbs_data"


class Held:
    """Stands for a DuckDB connection in a frame: unlike one, it can be watched being freed."""


def fail_with_a_cause(watched: list[weakref.ref]) -> None:
    try:
        fail_holding_a_connection(watched)
    except OSError as exc:
        raise ValueError("the error for the person") from exc


def fail_holding_a_connection(watched: list[weakref.ref]) -> None:
    con = Held()
    watched.append(weakref.ref(con))
    raise OSError("the cause")


def test_release_frames_frees_what_the_failed_frames_held():
    watched: list[weakref.ref] = []
    try:
        fail_with_a_cause(watched)
    except ValueError as exc:
        error = exc
    # only the cause's traceback reaches the frame that held it
    assert watched[0]() is not None
    release_frames(error)
    assert watched[0]() is None
    shown = "".join(traceback.format_exception(error))  # `-v` still prints the whole traceback
    assert "fail_holding_a_connection" in shown and "the error for the person" in shown


def test_a_failed_flow_lets_go_of_its_frames(prefect_harness):
    from prefect import flow

    watched: list[weakref.ref] = []

    @flow(on_failure=[release_failed_run])
    def failing() -> None:
        fail_with_a_cause(watched)

    with pytest.raises(ValueError, match="the error for the person") as raised:
        failing()
    assert raised.value.__cause__ is not None and watched[0]() is None
