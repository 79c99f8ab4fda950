"""I/O tasks retry what may pass (a network filesystem's EIO, a timeout) and nothing else."""
from __future__ import annotations

import errno

import pytest
from prefect import flow, task

from tasks.common.retrying import IO_RETRIES, is_transient_io_error
from tasks.common.settings import ThumbsError


def raised_from(cause: BaseException) -> ThumbsError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise ThumbsError("data.jsonl: cannot read") from exc
    except ThumbsError as wrapped:
        return wrapped


@pytest.mark.parametrize("error, transient", [
    (OSError(errno.EIO, "Input/output error"), True),
    (OSError(errno.ESTALE, "Stale file handle"), True),
    (TimeoutError("read timed out"), True),
    (raised_from(OSError(errno.EIO, "Input/output error")), True),  # our one-line error over a flaky read
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (OSError(errno.EROFS, "Read-only file system"), False),
    (raised_from(OSError(errno.ENOENT, "No such file")), False),
    (ThumbsError("data.jsonl: row 3: invalid JSON"), False),
    (ValueError("bug"), False),
])
def test_which_errors_are_worth_another_try(error, transient):
    assert is_transient_io_error(error) is transient


def flaky(failures: list[BaseException]):
    attempts = []

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def read_file() -> int:
        attempts.append(1)
        if failures:
            raise failures.pop(0)
        return len(attempts)

    @flow
    def load() -> int:
        return read_file()

    return load, attempts


def test_a_transient_error_is_retried_until_it_passes(prefect_harness):
    load, attempts = flaky([OSError(errno.EIO, "Input/output error"), TimeoutError("slow share")])
    assert load() == 3 and len(attempts) == 3


def test_bad_data_fails_at_once(prefect_harness):
    load, attempts = flaky([ThumbsError("data.jsonl: row 3: invalid JSON")])
    with pytest.raises(ThumbsError, match="row 3"):
        load()
    assert len(attempts) == 1
