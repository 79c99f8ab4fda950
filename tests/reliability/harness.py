"""Tools the fault tests share: fingerprints of a warehouse, comparison with a
clean run, a killable `thumbs` subprocess that announces where it is, and the
checks that nothing half-written is visible after a fault.

The training-side kill tests (snapshot, reference cache, checkpoint) are meant
to reuse these: `Thumbs` runs any verb, `Thumbs.wait_for` + `Thumbs.kill` kill
it at a named point (add the point to _killable.py), and `fingerprint` /
`compare` say whether the re-run matches a clean one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from tasks.common.settings import PROJECT_ROOT

from . import ledger

DRIVER = Path(__file__).with_name("_killable.py")

# Every table whose contents a re-run must reproduce, with the columns that
# legitimately differ between runs (which batch loaded a row, and when).
COMPARED_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "raw.records": ("", ("batch_id",)),
    "quarantine": ("", ("batch_id",)),
    "staging.stg_hh__pairs": ("", ("batch_id",)),
    "staging.stg_shp__pairs": ("", ("batch_id",)),
    "staging.stg_oasst__messages": ("", ("batch_id",)),
    "staging.stg_log__ratings": ("", ("batch_id",)),
    "staging.stg_log__pairs": ("", ("batch_id",)),
    "ingest_runs": ("WHERE status = 'loaded'", ("batch_id", "started_at", "finished_at")),
    "preference_pairs": ("", ("batch_id", "ingested_at")),
    "feedback": ("", ("batch_id", "ingested_at")),
    # Which run made a snapshot or checkpoint, when and under which home; a checkpoint's
    # id is random. What it learned from and what it measured must match.
    "snapshots": ("", ("path", "created_at", "run_id")),
    # Metrics too: throughput and wall time differ, and eval metrics in the last digits
    # (compare them with a tolerance).
    "checkpoints": ("", ("checkpoint_id", "run_id", "path", "metrics", "created_at")),
}
MARTS = ("preference_pairs", "feedback")


def _row_hash(row: tuple) -> str:
    return hashlib.sha256(repr(row).encode("utf-8", "surrogatepass")).hexdigest()


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> Counter:
    where, volatile = COMPARED_TABLES[table]
    exclude = f"EXCLUDE ({', '.join(volatile)})" if volatile else ""
    rows = con.execute(f"SELECT * {exclude} FROM {table} {where}").fetchall()
    return Counter(_row_hash(row) for row in rows)


PUBLISHED_TABLES = ("quarantine", "ingest_runs", "preference_pairs", "feedback")


def warehouse_rows(home: str | Path, sql: str) -> list[tuple]:
    """One query's rows from the live warehouse file, opened read-only for that query alone."""
    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def fingerprint(home: Path, tables=tuple(COMPARED_TABLES), *, published: bool = False) -> dict[str, Counter]:
    """Each table's rows as a multiset of hashes (volatile columns left out);
    published=True reads the analysts' copy instead of the warehouse."""
    if published:
        tables = [t for t in tables if t in PUBLISHED_TABLES]
    path = Path(home) / ("published/warehouse.duckdb" if published else "warehouse.duckdb")
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {table: table_fingerprint(con, table) for table in tables}
    finally:
        con.close()


@dataclass
class Comparison:
    lost: int = 0
    duplicated: int = 0
    differing: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (lost, extra)

    def __bool__(self) -> bool:  # true when identical
        return not self.differing


def compare(clean: dict[str, Counter], got: dict[str, Counter], *, record: bool = True) -> Comparison:
    """Rows of the clean run missing from `got` (lost) and rows beyond it (duplicates)."""
    result = Comparison()
    for table in clean:
        lost = sum((clean[table] - got[table]).values())
        extra = sum((got[table] - clean[table]).values())
        result.lost += lost
        result.duplicated += extra
        if lost or extra:
            result.differing[table] = (lost, extra)
    if record:
        ledger.compared(result.lost, result.duplicated)
    return result


def count_rows(home: Path) -> dict[str, int]:
    return {table: sum(counts.values()) for table, counts in fingerprint(home).items()}


# --- nothing half-written is visible -----------------------------------------

def partial_state_problems(home: Path, expected_raw_rows: dict[str, int]) -> list[str]:
    """Every file either fully there (raw rows, staged, quarantined all matching its
    ingest_runs row) or not there at all; [] when that holds.

    expected_raw_rows: file sha256 -> rows the file holds (raw.records keeps each once).
    """
    problems = []
    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    try:
        runs = {sha: (loaded, quarantined) for sha, loaded, quarantined in con.execute(
            "SELECT file_sha256, rows_loaded, rows_quarantined FROM ingest_runs WHERE status = 'loaded'").fetchall()}
        raw = dict(con.execute("SELECT file_sha256, count(*) FROM raw.records GROUP BY ALL").fetchall())
        quarantine = dict(con.execute("SELECT file_sha256, count(*) FROM quarantine GROUP BY ALL").fetchall())
        staged: Counter = Counter()
        for table in [t for t in COMPARED_TABLES if t.startswith("staging.")]:
            staged.update(dict(con.execute(f"SELECT file_sha256, count(*) FROM {table} GROUP BY ALL").fetchall()))
        duplicated_runs = con.execute("SELECT file_sha256, source, count(*) FROM ingest_runs "
                                      "WHERE status = 'loaded' GROUP BY ALL HAVING count(*) > 1").fetchall()
    finally:
        con.close()
    problems += [f"file {sha[:12]} ({source}) recorded as loaded {n} times" for sha, source, n in duplicated_runs]
    for sha in set(raw) | set(quarantine) | set(staged):
        if sha not in runs:
            problems.append(f"file {sha[:12]}: rows visible (raw {raw.get(sha, 0)}, staged {staged.get(sha, 0)}, "
                            f"quarantined {quarantine.get(sha, 0)}) but no finished ingest recorded")
    for sha, (loaded, quarantined) in runs.items():
        if sha in expected_raw_rows and raw.get(sha, 0) != expected_raw_rows[sha]:
            problems.append(f"file {sha[:12]}: {raw.get(sha, 0)} raw rows, the file has {expected_raw_rows[sha]}")
        if staged.get(sha, 0) != loaded:
            problems.append(f"file {sha[:12]}: {staged.get(sha, 0)} staged rows, ingest_runs says {loaded} loaded")
        if quarantine.get(sha, 0) != quarantined:
            problems.append(f"file {sha[:12]}: {quarantine.get(sha, 0)} quarantined rows, "
                            f"ingest_runs says {quarantined}")
    return problems


def training_state_problems(home: Path) -> list[str]:
    """Every snapshot, reference cache, resumable state and checkpoint that has its
    final name is whole, and every recorded one is there; [] when that holds.

    Scratch copies (names starting with '.') are invisible to every reader and not checked.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from tasks.train.checkpoints import read_manifest
    from tasks.common.settings import ThumbsError
    from tasks.train.snapshots import load_snapshot

    home = Path(home)
    snapshot_rows = warehouse_rows(home, "SELECT snapshot_id, path, files FROM snapshots")
    checkpoint_rows = warehouse_rows(home, "SELECT checkpoint_id, path FROM checkpoints")
    problems = []
    for snapshot_id, path, files in snapshot_rows:
        for name, digest in json.loads(files).items():
            file = Path(path) / name
            if not file.is_file() or sha256_file(file) != digest:
                problems.append(f"snapshot {snapshot_id}: {name} missing or not the recorded sha256")
    for directory in visible(home / "snapshots"):
        try:
            load_snapshot(directory)
        except ThumbsError as exc:
            problems.append(f"snapshot directory {directory.name} is not whole: {exc}")
    recorded = {checkpoint_id: Path(path) for checkpoint_id, path in checkpoint_rows}
    for checkpoint_id, path in recorded.items():
        if not (path / "manifest.json").is_file():
            problems.append(f"checkpoint {checkpoint_id}: recorded, but {path} has no manifest.json")
    for directory in set(visible(home / "checkpoints")) | set(recorded.values()):
        try:
            if read_manifest(directory)["checkpoint_id"] != directory.name:
                problems.append(f"checkpoint directory {directory.name}: its manifest names another checkpoint")
            AutoModelForCausalLM.from_pretrained(directory)
        except Exception as exc:  # ThumbsError, OSError, or whatever a truncated safetensors raises
            problems.append(f"checkpoint directory {directory.name} is not whole: {first_line_of(exc)}")
    for cache in visible(home / "cache" / "reference"):
        try:
            logps = torch.load(cache, weights_only=True)["logps"]
            if not all(map(math.isfinite, logps.values())):
                problems.append(f"reference cache {cache.name}: non-finite log-probs")
        except Exception as exc:  # whatever torch.load makes of a truncated file
            problems.append(f"reference cache {cache.name} is unreadable: {first_line_of(exc)}")
    for state in (home / "runs").glob("*/state.pt"):
        try:
            torch.load(state, map_location="cpu", weights_only=False)["step"]
        except Exception as exc:
            problems.append(f"{state.parent.name}/state.pt is unreadable: {first_line_of(exc)}")
    return problems


def visible(directory: Path) -> list[Path]:
    """What a reader listing `directory` takes for finished work (no scratch names)."""
    return sorted(p for p in directory.iterdir() if not p.name.startswith(".")) if directory.is_dir() else []


def first_line_of(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def published_problems(home: Path) -> list[str]:
    """The analysts' copy opens through `thumbs query` and is self-consistent."""
    from tasks.warehouse.query import run_query
    from tasks.common.settings import ThumbsError

    path = Path(home) / "published" / "warehouse.duckdb"
    if not path.exists():
        return []
    try:
        bad_runs = run_query("SELECT count(*) FROM ingest_runs WHERE "
                             "rows_read != rows_loaded + rows_duplicate + rows_quarantined", home)[1][0][0]
        quarantined, expected = run_query(
            "SELECT (SELECT count(*) FROM quarantine), "
            "(SELECT coalesce(sum(rows_quarantined), 0) FROM ingest_runs WHERE status = 'loaded')", home)[1][0]
    except ThumbsError as exc:
        return [f"published copy unreadable: {exc}"]
    problems = []
    if bad_runs:
        problems.append(f"published copy: {bad_runs} ingest_runs rows do not add up")
    if quarantined != expected:
        problems.append(f"published copy: {quarantined} quarantine rows, ingest_runs says {expected}")
    return problems


# --- a thumbs subprocess that can be killed at a named point ----------------------

def subprocess_env(prefect_api_url: str | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("THUMBS_HOME", None)
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


class Thumbs:
    """`thumbs ARGS` in a subprocess (through _killable.py), reporting events to a file.

    pause_at names an event (e.g. 'insert-raw_chunk:1', 'file-committed:1',
    'publish-swap:1', 'binarize-model:3'): the process stops there and waits to be
    killed, so a kill lands exactly at that point.
    """

    def __init__(self, argv: list[str], events: Path, *, prefect_api_url: str | None,
                 pause_at: str = "", chunk_rows: int | None = None, cwd: Path = PROJECT_ROOT,
                 env: dict[str, str] | None = None):
        self.events = events
        events.write_text("")
        extra = {"RELIABILITY_EVENTS": str(events), "RELIABILITY_PAUSE_AT": pause_at}
        if chunk_rows:
            extra["RELIABILITY_CHUNK_ROWS"] = str(chunk_rows)
        # Its own process group: a kill takes the trainer child with it, as a killed
        # worker, a lost machine or a cancelled flow run does.
        self.process = subprocess.Popen(
            [sys.executable, str(DRIVER), *argv], cwd=cwd,
            env={**subprocess_env(prefect_api_url), **(env or {}), **extra},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.killed = False
        self.stdout = self.stderr = ""

    def seen(self) -> list[str]:
        return self.events.read_text().splitlines()

    def wait_for(self, event: str, timeout: float = 120.0) -> bool:
        """True once `event` was reported; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if event in self.seen():
                return True
            if self.process.poll() is not None:
                return event in self.seen()
            time.sleep(0.02)
        raise TimeoutError(f"no '{event}' within {timeout:.0f}s; saw {self.seen()[-5:]}")

    def kill(self, kind: str = "kill") -> bool:
        """SIGKILL it and its children now; True if it was still running (a fault was injected)."""
        alive = self.process.poll() is None
        if alive:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.killed = True
            ledger.fault(kind)
        self.finish()
        return alive

    def finish(self, timeout: float = 300.0) -> int:
        self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode


# --- files ------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


# --- mounts (root only): a small tmpfs, or a read-only bind ---------------------------

def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True)


def mount_small_fs(target: Path, size_kib: int, scratch: Path) -> str:
    """Mount a size-limited file system on `target`; the kind mounted, or raise OSError."""
    if os.geteuid() != 0:
        raise OSError("mounting needs root")
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(target))
    if done.returncode == 0:
        return "tmpfs"
    image = scratch / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(max(size_kib, 2048) * 1024)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    looped = _run("mount", "-o", "loop", str(image), str(target)) if made.returncode == 0 else made
    if looped.returncode == 0:
        return "loop"
    raise OSError(f"cannot mount tmpfs ({done.stderr.strip()}) nor a loop file ({looped.stderr.strip()})")


def mount_read_only(target: Path) -> None:
    if os.geteuid() != 0:
        raise OSError("mounting needs root")
    for cmd in (("mount", "--bind", str(target), str(target)),
                ("mount", "-o", "remount,ro,bind", str(target))):
        done = _run(*cmd)
        if done.returncode != 0:
            raise OSError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def unmount(target: Path) -> None:
    for _ in range(20):
        if _run("umount", str(target)).returncode == 0 or not os.path.ismount(target):
            return
        time.sleep(0.2)


def fill_disk(directory: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file until at most `leave_bytes` remain free on directory's file system."""
    filler = directory / "filler.bin"
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as fh:
        try:
            remaining = max(free - leave_bytes, 0)
            block = b"\0" * (1 << 16)
            while remaining > 0:
                written = fh.write(block[: min(len(block), remaining)])
                remaining -= written
            fh.flush()
            os.fsync(fh.fileno())
        except OSError:
            pass  # full already: that is the point
    return filler
