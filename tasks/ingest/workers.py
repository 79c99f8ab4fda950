"""Worker processes that parse an ingest's batches in parallel, results in order.

Plain child interpreters fed over pipes, not multiprocessing (see WorkerPool).
Used by tasks.ingest.load for big files.
"""
from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

Result = TypeVar("Result")


def in_order(work: Callable[..., Result], batches: Iterable, workers: int) -> Iterator[Result]:
    """work(batch) for every batch, in order: in this process, or spread over
    `workers` worker processes with a few batches in flight (bounded, so memory stays flat)."""
    if not workers:
        yield from map(work, batches)
        return
    with WorkerPool(workers, work) as pool:
        assigned: deque[int] = deque()  # the worker of each batch in flight, oldest first
        for number, batch in enumerate(batches):
            pool.submit(number % workers, batch)
            assigned.append(number % workers)
            if len(assigned) > 2 * workers:
                yield pool.result(assigned.popleft())
        while assigned:
            yield pool.result(assigned.popleft())


class WorkerPool:
    """Processes that run one `work` function on batches, first in first out.

    Plain child interpreters fed over pipes, not multiprocessing: spawn would run
    the caller's main module again (a script without a __main__ guard would ingest
    twice), and fork would copy a process in the middle of DuckDB's threads. A
    thread per worker writes its batches, so a worker blocked on sending a result
    can never wait on us sending it the next batch.
    """

    def __init__(self, count: int, work) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
        self.processes = [subprocess.Popen([sys.executable, "-c", "import tasks.ingest.workers; tasks.ingest.workers._serve()"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                          for _ in range(count)]
        self.queues = [queue.SimpleQueue() for _ in range(count)]
        self.feeders = [threading.Thread(target=_feed, args=(process.stdin, jobs), daemon=True)
                        for process, jobs in zip(self.processes, self.queues)]
        for feeder, jobs in zip(self.feeders, self.queues):
            jobs.put(work)
            feeder.start()

    def submit(self, worker: int, batch) -> None:
        self.queues[worker].put(batch)

    def result(self, worker: int):
        ok, value = _receive(self.processes[worker].stdout)
        if not ok:
            raise WorkerFailed(f"ingest worker failed: {value}")
        return value

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info) -> None:
        for jobs in self.queues:
            jobs.put(None)
        for process in self.processes:
            if exc_info[0] is not None:
                process.kill()
            process.wait()
            process.stdout.close()


class WorkerFailed(Exception):
    """A worker raised (a bug, not a bad row: those are quarantined) or died."""


def _send(pipe, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(8, "little"))
    pipe.write(data)
    pipe.flush()


def _receive(pipe):
    head = pipe.read(8)
    if len(head) < 8:
        raise WorkerFailed("ingest worker exited unexpectedly (see its error above)")
    return pickle.loads(pipe.read(int.from_bytes(head, "little")))


def _feed(pipe, jobs: queue.SimpleQueue) -> None:
    try:
        while (job := jobs.get()) is not None:
            _send(pipe, job)
    except OSError:
        pass  # the worker is gone; reading its result says so
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _serve() -> None:
    """A worker's loop: the work function, then batches until the pipe closes."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the results
    batches = sys.stdin.buffer
    work = _receive(batches)
    while True:
        try:
            batch = _receive(batches)
        except WorkerFailed:
            return  # the loader closed the pipe: no more batches
        try:
            outcome = (True, work(batch))
        except Exception as exc:  # a bug, not a bad row (those are quarantined): the loader raises it
            outcome = (False, f"{type(exc).__name__}: {exc}")
        _send(results, outcome)
