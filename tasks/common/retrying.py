"""Retries for the tasks that touch files, and only for failures a second try can fix.

A network filesystem that times out or a file briefly locked by a copier is worth
a retry with backoff; a malformed file, a full disk or a read-only home is not:
retrying those only delays the one-line error. Every retried task is safe to repeat
(a file loads in one transaction, a publish or snapshot is renamed into place).
"""
from __future__ import annotations

import errno

from prefect.tasks import exponential_backoff

TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY,
                              errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH})


def is_transient_io_error(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, is an I/O failure that may pass."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_transient_io(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry a failed run only for a transient I/O error."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by the failed state
        return is_transient_io_error(exc)
    return False


# Passed to @task: three retries after 2, 4 and 8 seconds.
IO_RETRIES = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
              "retry_condition_fn": retry_transient_io}
