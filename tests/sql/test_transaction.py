"""transaction(): the one BEGIN/COMMIT/ROLLBACK of every write that must land whole
(an ingest's file, binarize's marts, a promotion, a migration)."""
from __future__ import annotations

import duckdb
import pytest

from tasks.warehouse.connection import transaction


@pytest.fixture()
def con():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    yield con
    con.close()


def keys(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [k for (k,) in con.execute("SELECT k FROM t ORDER BY k").fetchall()]


def test_the_block_is_committed_when_it_ends(con):
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1), (2)")
    assert keys(con.cursor()) == [1, 2]  # a second connection sees only committed rows


def test_a_failed_statement_rolls_back_the_block_and_its_error_is_raised_as_it_was(con):
    with pytest.raises(duckdb.ConstraintException, match="(?i)duplicate key"):
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
            con.execute("INSERT INTO t VALUES (1)")
    assert keys(con) == []


def test_ctrl_c_rolls_back_the_block(con):
    with pytest.raises(KeyboardInterrupt):
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
            raise KeyboardInterrupt
    assert keys(con) == []


def test_an_error_after_the_transaction_ended_is_not_hidden_by_rollback(con):
    with pytest.raises(OSError, match="No space left on device"):
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
            con.execute("COMMIT")  # what a failed COMMIT leaves: no transaction open
            raise OSError(28, "No space left on device")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
    assert keys(con) == [1, 2]
