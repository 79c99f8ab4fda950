"""Write-then-rename: a reader sees the old file or directory or the new one, whole."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tasks.common.files import (replaced_directory, replaced_file, scratch_path, write_json_atomically,
                                writer_gone, writer_tag)


def test_a_replaced_file_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "deep" / "state.pt"
    with replaced_file(target) as scratch:
        scratch.write_text("new")
        assert not target.exists() and scratch.parent == target.parent and scratch.name.startswith(".")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["state.pt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_scratch(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomically(target, {"step": 1})
    with pytest.raises(RuntimeError):
        with replaced_file(target) as scratch:
            scratch.write_text("half")
            raise RuntimeError("killed halfway")
    assert json.loads(target.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_symlink_replaces_a_symlink(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alias = tmp_path / "champion"
    for checkpoint in ("a", "b"):
        with replaced_file(alias) as fresh:
            fresh.symlink_to(tmp_path / checkpoint)
    assert alias.resolve() == tmp_path / "b"


def test_a_replaced_directory_appears_whole(tmp_path):
    target = tmp_path / "snapshots" / "abc"
    with replaced_directory(target) as scratch:
        (scratch / "train.parquet").write_text("rows")
        assert not target.exists()
    assert (target / "train.parquet").read_text() == "rows"
    assert [p.name for p in target.parent.iterdir()] == ["abc"]


def test_an_existing_directory_is_kept_or_replaced_as_asked(tmp_path):
    target = tmp_path / "d"
    with replaced_directory(target) as scratch:
        (scratch / "first").touch()
    with replaced_directory(target) as scratch:  # same name, same content: the first writer's stays
        (scratch / "second").touch()
    assert [p.name for p in target.iterdir()] == ["first"]
    with replaced_directory(target, replace_existing=True) as scratch:
        (scratch / "third").touch()
    assert [p.name for p in target.iterdir()] == ["third"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no scratch, no retired copy


def test_a_failed_directory_build_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with replaced_directory(tmp_path / "d") as scratch:
            (scratch / "weights").touch()
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_scratch_names_carry_a_writer_that_can_be_checked(tmp_path):
    assert scratch_path(tmp_path / "x", "tmp").name == f".x.{writer_tag()}.tmp"
    assert not writer_gone(writer_tag())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert writer_gone(writer_tag().rpartition("-")[0] + "-" + dead)
    assert not writer_gone("another-host.example-1")  # another host's writer cannot be checked: kept
