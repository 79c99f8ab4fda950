"""One nightly run at a time per THUMBS_HOME."""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from tasks.common.home import Home, HomeLike
from tasks.common.settings import ThumbsError


@contextmanager
def exclusive_run(name: str, home: HomeLike = None) -> Iterator[Path]:
    """Hold THUMBS_HOME/<name>.lock for the block, or refuse at once naming the holder.

    flock is released by the kernel when the holder dies, so a killed run never
    leaves a stale lock behind.
    """
    path = Home.of(home).lock(name)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ThumbsError(f"{path}: another {name} run is in progress ({holder}); try again when it ends")
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started_at": datetime.now(timezone.utc).isoformat()}))
        handle.flush()
        yield path
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
