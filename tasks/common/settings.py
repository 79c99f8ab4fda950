"""Where thumbs keeps its state, and where the project's own files live."""
from __future__ import annotations

import subprocess
import traceback
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder holding flows/, tasks/, schemas/


def shipped_root(code_root: Path = PROJECT_ROOT) -> Path:
    """The folder holding the files the code reads at run time (warehouse/,
    examples/, demo_data/): the checkout itself, or in an installed wheel the
    `thumbs_data/` folder beside the packages (setup.py puts them there)."""
    installed = code_root / "thumbs_data"
    return installed if installed.is_dir() else code_root


SHIPPED_ROOT = shipped_root()
WAREHOUSE_SQL = SHIPPED_ROOT / "warehouse"


class ThumbsError(Exception):
    """An error meant for a person: one line naming the file, row and reason."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line, for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def release_frames(exc: BaseException | None) -> None:
    """Drop the local variables held by the finished frames of an exception's
    traceback, and of its causes and contexts. Prefect keeps a failed run's
    exception until the process exits, and with it every frame it passed
    through: their DuckDB connections then outlive DuckDB's own teardown, which
    prints a "nanobind: leaked instance" line for each after the error."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)  # skips frames still running
        pending += [current.__cause__, current.__context__]


def release_failed_run(flow, flow_run, state) -> None:
    """Every flow's on_failure hook: the failed run's exception, which Prefect keeps,
    lets go of what its frames held (see release_frames)."""
    release_frames(state.result(raise_on_failure=False))


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the running code (with +dirty), or the package version:
    an installed wheel is no checkout, even when its virtualenv sits inside one."""
    if SHIPPED_ROOT != PROJECT_ROOT:
        return _package_version()
    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            # --no-optional-locks: a status must not take .git/index.lock (a write
            # outside THUMBS_HOME that can break a concurrent `git commit`).
            ["git", "--no-optional-locks", "-C", str(PROJECT_ROOT), "status", "--porcelain",
             "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return _package_version()


def _package_version() -> str:
    from importlib.metadata import version

    return "thumbs-" + version("thumbs")
