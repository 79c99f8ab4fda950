"""Home: THUMBS_HOME resolved once, and the layout on disk it names."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.common.home import Home
from tasks.common.settings import ThumbsError


def test_home_resolves_argument_then_environment_then_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THUMBS_HOME", raising=False)
    assert Home.of().root == tmp_path / ".thumbs"
    monkeypatch.setenv("THUMBS_HOME", str(tmp_path / "from-env"))
    assert Home.of().root == tmp_path / "from-env"
    assert Home.of("relative").root == tmp_path / "relative"  # absolute: a child process runs elsewhere
    assert (tmp_path / "relative").is_dir()


def test_a_home_passes_through_and_works_as_a_path(tmp_path):
    home = Home.of(tmp_path / "h")
    assert Home.of(home) is home
    assert Home.of(str(home)) == home  # what a flow hands a deployment comes back as the same home
    assert Path(home) == Path(os.fspath(home)) == tmp_path / "h"


def test_the_layout_on_disk(tmp_path):
    home = Home.of(tmp_path)
    assert {name: str(getattr(home, name).relative_to(tmp_path)) for name in (
        "warehouse", "published", "snapshots", "checkpoints", "champion", "runs", "evaluations",
        "openlineage", "reference_cache", "pseudonym_key")} == {
        "warehouse": "warehouse.duckdb", "published": "published/warehouse.duckdb", "snapshots": "snapshots",
        "checkpoints": "checkpoints", "champion": "checkpoints/champion", "runs": "runs",
        "evaluations": "evaluations", "openlineage": "lineage/openlineage.jsonl",
        "reference_cache": "cache/reference", "pseudonym_key": "secrets/pseudonym.key"}
    assert home.lock("nightly") == tmp_path / "nightly.lock"


def test_a_home_that_cannot_be_created_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ThumbsError, match="cannot create THUMBS_HOME"):
        Home.of(tmp_path / "file" / "home")
