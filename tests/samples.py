"""Where the tests find real rows.

Every clone has demo_data/: the demo's first rows of HH-RLHF and OASST, and in
demo_data/test-slices/ the rows of the full test files that show a quirk (listed
by line in demo_data/ORIGIN.md). ../shared/data, beside the project in CI, holds
the fuller samples: the whole files whose counts (docs/data-quirks.md) some tests
reconcile, and SHP, which cannot be shipped. A test that reads it says what it
needs from it and skips where it is absent; THUMBS_SHARED_DATA points elsewhere
(a missing folder shows what a user's clone runs).
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tasks.common.settings import PROJECT_ROOT

DEMO_DATA = PROJECT_ROOT / "demo_data"
TEST_SLICES = DEMO_DATA / "test-slices"
SHARED_DATA = Path(os.environ.get("THUMBS_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))

DEMO_HH_HELPFUL = DEMO_DATA / "hh-rlhf" / "helpful-base.test.head200.jsonl.gz"  # lines 0-199 of helpful-base
DEMO_HH_HARMLESS = DEMO_DATA / "hh-rlhf" / "harmless-base.test.head200.jsonl.gz"
DEMO_OASST_TREES = DEMO_DATA / "oasst" / "en_100_tree.head30.jsonl"  # the first 30 of the 100 trees

# The 0-based lines of each full HH test file that its slice holds, in order: every
# row whose prompts differ when split at the last "\n\nAssistant:", whose sides are
# identical or whose final reply is empty, every row whose history keeps a second
# "\n\nAssistant:" inside a turn, and harmless-base 2 (a plain multi-turn row).
HH_QUIRK_LINES = {
    "harmless-base": [2, 86, 516, 667, 763, 925, 1103, 1254, 1319, 1688, 1849, 1950, 1952, 2036],
    "helpful-base": [120, 168, 354, 355, 567, 721, 740, 743, 960, 991, 1011, 1132, 1166, 1214, 1307, 1355,
                     1450, 1683, 1847, 2063, 2168],
    "helpful-rejection-sampled": [200, 237, 285, 305, 355, 382, 428, 501, 613, 690, 719, 720, 747, 755, 872,
                                  1164, 1271, 1274, 1279, 1597, 1775, 1794, 1827, 1954, 1969, 2204, 2248, 2364,
                                  2374, 2524, 2570, 2578, 2610, 2679, 2729],
}
# oasst1-en-validation.jsonl is grouped by tree; its slice holds whole trees (0-based
# line ranges, end excluded): the first tree, the 3 trees the 30 demo trees share with
# it, the 3 trees with a deleted ranked reply, the tree whose rank-2 reply repeats the
# best one, and the 3 messages whose parent the English filter dropped.
OASST_QUIRK_LINES = [*range(0, 12), 152, 214, *range(531, 546), *range(710, 722), *range(848, 860),
                     *range(1200, 1210), *range(1247, 1256), *range(1348, 1357), 1669, *range(1947, 1960)]


def hh_quirks(name: str) -> Path:
    return TEST_SLICES / "hh-rlhf" / f"{name}.test.quirks.jsonl.gz"


OASST_QUIRKS = TEST_SLICES / "oasst" / "oasst1-en-validation.quirks.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a .jsonl or .jsonl.gz file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def shared_data(need: str) -> Path:
    """../shared/data, or skip the test saying what it needs that the shipped slices lack."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs {need}: only in {SHARED_DATA}, which a user's clone does not have")
    return SHARED_DATA


def shared_shp() -> Path:
    """The SHP rows of ../shared/data: SHP's license is unclear, so no SHP row is shipped."""
    return shared_data("SHP rows, which are not shipped (their license is unclear)") / "shp"
