"""`thumbs binarize` builds incrementally and says so; `thumbs binarize --full`
rebuilds everything and gives the same marts. The real CLI under the session's
Prefect server, on the shipped HH slice."""
from __future__ import annotations

import re

from flows.cli import main
from samples import DEMO_HH_HARMLESS, DEMO_HH_HELPFUL
from tasks.warehouse.connection import connect

MARTS = ("preference_pairs", "feedback", "feedback_ties")


def marts(home) -> dict[str, tuple[int, int]]:
    with connect(home) as con:
        return {mart: con.execute(f"SELECT count(*), sum(hash(t)) FROM {mart} AS t").fetchone() for mart in MARTS}


def test_binarize_is_incremental_and_full_on_request(home, prefect_harness, capsys):
    thumbs = lambda *argv: main(["--home", str(home), *argv])  # noqa: E731
    assert thumbs("ingest", "hh", str(DEMO_HH_HELPFUL)) == 0
    assert thumbs("binarize") == 0
    assert "full rebuild: no earlier build recorded (1 new batch(es))" in capsys.readouterr().out
    assert thumbs("ingest", "hh", str(DEMO_HH_HARMLESS)) == 0
    assert thumbs("binarize") == 0
    out = capsys.readouterr().out
    rebuilt = re.search(r"binarize: incremental: .*\(1 new batch\(es\), (\d+) prompt\(s\) rebuilt\)", out)
    assert rebuilt and 0 < int(rebuilt.group(1)) <= 200, out  # the new file's prompts, not the first file's
    incremental = marts(home)
    assert thumbs("binarize", "--full") == 0
    assert "full rebuild asked for (--full) (0 new batch(es))" in capsys.readouterr().out
    assert marts(home) == incremental
    assert incremental["preference_pairs"][0] > 200  # both files' pairs
    assert thumbs("binarize", "eval_fraction=0.3") == 0
    assert "options changed since the last build (eval_fraction 0.1 -> 0.3)" in capsys.readouterr().out
