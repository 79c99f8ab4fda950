"""Writing a file or a directory so that a reader, or a run killed halfway, sees the
old version or the new one and never part of one: write under a scratch name beside
the target, fsync, rename. A scratch name starts with '.', so no reader looks at it,
and carries its writer's host and pid, so the next writer can tell a dead writer's
leftovers from a live one's."""
from __future__ import annotations

import json
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def writer_tag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def writer_gone(tag: str) -> bool:
    """Whether the writer a scratch name was tagged with (writer_tag) is dead. Only a
    writer on this host can be checked; another host's scratch is left to that host."""
    host, _, pid = tag.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def scratch_path(target: Path, kind: str) -> Path:
    """`.<target name>.<writer tag>.<kind>` beside `target`."""
    return target.with_name(f".{target.name}.{writer_tag()}.{kind}")


def fsync_path(path: Path) -> None:
    """A file's bytes, or a directory's entries, on disk before a rename publishes them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replaced_file(target: Path) -> Iterator[Path]:
    """A scratch path beside `target` to write the new file at; when the block ends
    without error it is fsynced and renamed over `target`, else removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_path(target, "tmp")
    scratch.unlink(missing_ok=True)
    try:
        yield scratch
        if not scratch.is_symlink():  # a symlink holds no bytes of its own to sync
            fsync_path(scratch)
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)


def write_json_atomically(path: Path, payload: Any) -> None:
    with replaced_file(path) as scratch:
        scratch.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")


@contextmanager
def replaced_directory(target: Path, *, replace_existing: bool = False) -> Iterator[Path]:
    """A fresh scratch directory beside `target` to build the new one in; when the block
    ends without error its files are fsynced and it is renamed to `target`.

    If `target` exists: with replace_existing it is swapped out and removed; without, it
    is kept, because it was named by its content (or a unique id) and renamed into place
    whole by another writer that won the race: the same directory as this one.
    """
    scratch, retired = scratch_path(target, "partial"), scratch_path(target, "old")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
        for path in sorted(scratch.rglob("*")):
            if path.is_file():
                fsync_path(path)
        fsync_path(scratch)
        if replace_existing and target.exists():
            os.rename(target, retired)
        try:
            os.rename(scratch, target)
        except OSError:
            if replace_existing or not target.exists():
                raise
        fsync_path(target.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
