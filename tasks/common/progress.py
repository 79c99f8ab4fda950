"""Progress bars for long reads, training and generation, shown only on an interactive terminal."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)


def enabled(requested: bool) -> bool:
    return requested and sys.stderr.isatty()


@contextmanager
def file_progress(label: str, total_bytes: int, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A callback taking bytes consumed so far, or None when progress is off."""
    if not enabled(show):
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task(label, total=total_bytes)
        yield lambda done: bar.update(task_id, completed=done)


@contextmanager
def rows_progress(label: str, total_rows: int, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A callback taking rows finished in one step, or None when progress is off;
    the bar shows rows done, rows/s and the time left."""
    if not enabled(show):
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task(label, total=total_rows, rate="")

        def advance(rows: int) -> None:
            bar.update(task_id, advance=rows)
            speed = bar.tasks[0].speed
            bar.update(task_id, rate=f"{speed:.2f} rows/s" if speed else "")

        yield advance
