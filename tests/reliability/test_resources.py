"""Resource faults: THUMBS_HOME on a full disk, and on a read-only file system.

Each must give a one-line error, leave the warehouse and the analysts' copy as
they were, and the next run once space (or write access) is back must succeed
and match a clean run.

Real mechanisms, since the suite runs as root and chmod would not bite: a small
tmpfs (or, where tmpfs is refused, an ext4 loop file) mounted on THUMBS_HOME,
filled with a filler file; and a read-only bind mount of THUMBS_HOME. Without
the rights to mount, these tests skip and say why.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import ledger
from .harness import (MARTS, compare, fill_disk, fingerprint, mount_read_only, mount_small_fs, partial_state_problems,
                      published_problems, unmount)


@dataclass
class Attempt:
    what: str
    code: int | None = None
    stderr: str = ""
    crash: str = ""  # an exception that escaped main(): the CLI would print a traceback
    changed: dict = field(default_factory=dict)  # what differs from before: table -> (lost, extra)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.changed

    @property
    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("thumbs: error:")]
        return lines[-1] if lines else ""


def thumbs(home: Path, *argv: str) -> Attempt:
    """flows.cli.main in-process; what a user would see on stderr."""
    from flows.cli import main

    attempt = Attempt(" ".join(argv))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            attempt.code = main(["--home", str(home), *argv])
        except BaseException as exc:  # noqa: BLE001 - what escapes main() is the finding
            attempt.crash = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    attempt.stderr = err.getvalue()
    return attempt


def state(home: Path) -> dict:
    """The warehouse and the analysts' copy, as fingerprints."""
    return {**fingerprint(home), **{f"published {t}": rows for t, rows in fingerprint(home, published=True).items()}}


def check_intact(home: Path, attempt: Attempt, before: dict, raw_rows: dict) -> None:
    attempt.problems = partial_state_problems(home, raw_rows) + published_problems(home)
    attempt.changed = compare(before, state(home)).differing


# --- disk full -------------------------------------------------------------------------

@dataclass
class DiskFull:
    attempts: list[Attempt]  # ingests on a full disk
    recovered: Attempt
    binarize: Attempt  # binarize on a full disk
    marts_before_binarize: dict
    marts_after_binarize: dict
    final: dict


@pytest.fixture(scope="module")
def disk_full(hh_files, prefect_harness, tmp_path_factory) -> DiskFull:
    scratch = tmp_path_factory.mktemp("disk-full")
    home = scratch / "home"
    home.mkdir()
    try:
        mount_small_fs(home, 160 * 1024, scratch)  # a clean run needs ~40 MB, more while checkpointing
    except OSError as exc:
        pytest.skip(f"cannot mount a small file system on THUMBS_HOME: {exc}")
    try:
        assert thumbs(home, "ingest", "shp", *hh_files.shp).code == 0
        attempts = []
        # No space at all; then room for the run to start but not for the file.
        for leave in (0, 1_500_000):
            before = state(home)
            filler = fill_disk(home, leave_bytes=leave)
            attempt = thumbs(home, "ingest", "hh", *hh_files.paths)
            attempt.what = f"ingest with {leave} bytes free"
            ledger.fault("disk full")
            check_intact(home, attempt, before, hh_files.raw_rows)
            attempts.append(attempt)
            filler.unlink()  # space is back
        recovered = thumbs(home, "ingest", "hh", *hh_files.paths)

        marts_before = fingerprint(home, MARTS)
        filler = fill_disk(home, leave_bytes=1_000_000)
        binarize = thumbs(home, "binarize")
        ledger.fault("disk full")
        binarize.problems = partial_state_problems(home, hh_files.raw_rows) + published_problems(home)
        marts_after = fingerprint(home, MARTS)
        filler.unlink()
        assert thumbs(home, "binarize").code == 0
        return DiskFull(attempts, recovered, binarize, marts_before, marts_after, fingerprint(home))
    finally:
        unmount(home)


def test_disk_full_leaves_warehouse_and_analysts_copy_intact(disk_full):
    for attempt in disk_full.attempts:
        assert attempt.code != 0 or attempt.crash, f"{attempt.what}: reported success on a full disk"
        assert attempt.intact and attempt.problems == [], (attempt.what, attempt.changed, attempt.problems)


def test_binarize_on_a_full_disk_leaves_whole_marts(disk_full, clean_reference):
    attempt = disk_full.binarize
    assert attempt.code != 0 or attempt.crash, "binarize reported success on a full disk"
    assert attempt.problems == []
    # The marts are the previous ones (empty here) or the new ones, never a part of them.
    new_marts = {t: clean_reference[t] for t in MARTS}
    assert compare(disk_full.marts_before_binarize, disk_full.marts_after_binarize, record=False).differing == {} \
        or compare(new_marts, disk_full.marts_after_binarize, record=False).differing == {}


def test_next_run_after_disk_full_matches_a_clean_run(disk_full, clean_reference):
    assert disk_full.recovered.code == 0, disk_full.recovered
    result = compare(clean_reference, disk_full.final)
    assert (result.lost, result.duplicated) == (0, 0), result.differing


def test_disk_full_is_one_line_error_naming_the_cause(disk_full):
    """Found by this suite: the failed COMMIT's error was hidden by ROLLBACK's own
    'cannot rollback - no transaction is active', and neither was a ThumbsError, so
    the CLI printed a traceback instead of one line."""
    for attempt in disk_full.attempts + [disk_full.binarize]:
        assert not attempt.crash, f"{attempt.what}: {attempt.crash}"
        assert attempt.code == 1 and "No space left on device" in attempt.error_line, attempt.stderr[-500:]


# --- read-only THUMBS_HOME ---------------------------------------------------------------

def test_read_only_home(hh_files, clean_reference, prefect_harness, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert thumbs(home, "ingest", "shp", *hh_files.shp).code == 0
    before = state(home)
    try:
        mount_read_only(home)
    except OSError as exc:
        pytest.skip(f"cannot bind-mount THUMBS_HOME read-only: {exc}")
    try:
        attempts = [thumbs(home, "ingest", "hh", *hh_files.paths), thumbs(home, "binarize"),
                    thumbs(home, "ingest", "log", str(hh_files.a.parent / "none.jsonl"))]
        ledger.fault("read-only home", len(attempts))
        query = thumbs(home, "query", "SELECT count(*) FROM ingest_runs")
    finally:
        unmount(home)
    for attempt in attempts:
        assert not attempt.crash, f"{attempt.what}: {attempt.crash}"
        assert attempt.code == 1 and attempt.stderr.strip() == attempt.error_line, attempt.stderr[-800:]
    assert "Read-only file system" in attempts[0].error_line and str(home) in attempts[0].error_line
    assert query.code == 0 and not query.crash  # analysts can still read
    assert compare(before, state(home)).differing == {}

    assert thumbs(home, "ingest", "hh", *hh_files.paths).code == 0  # write access is back
    assert thumbs(home, "binarize").code == 0
    result = compare(clean_reference, fingerprint(home))
    assert (result.lost, result.duplicated) == (0, 0), result.differing
