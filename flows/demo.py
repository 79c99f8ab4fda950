"""`thumbs demo`: the pipeline on the data shipped in this repository, on CPU."""
from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow

from flows.binarize import binarize_flow
from flows.ingest import ingest_flow
from tasks.binarize import BinarizeResult
from tasks.ingest import FileResult
from tasks.settings import PROJECT_ROOT

DEMO_DATA = PROJECT_ROOT / "demo_data"
EXAMPLES = PROJECT_ROOT / "examples"

# (source, files, mapping): licensed HH and OASST slices, and our own example logs.
DEMO_SOURCES: list[tuple[str, list[str], str | None]] = [
    ("hh", sorted(str(p) for p in (DEMO_DATA / "hh-rlhf").glob("*.jsonl.gz")), None),
    ("oasst", sorted(str(p) for p in (DEMO_DATA / "oasst").glob("*.jsonl")), None),
    ("log", [str(EXAMPLES / "support-bot.jsonl")], str(EXAMPLES / "support-bot.mapping.yaml")),
    ("log", [str(EXAMPLES / "ab-test.csv")], str(EXAMPLES / "ab-test.mapping.yaml")),
]


@dataclass
class DemoResult:
    ingested: dict[str, list[FileResult]] = field(default_factory=dict)
    binarized: BinarizeResult | None = None


@flow(name="demo")
def demo_flow(home: str | None = None, show_progress: bool = False) -> DemoResult:
    result = DemoResult()
    for source, paths, mapping in DEMO_SOURCES:
        files = ingest_flow(source, paths, mapping=mapping, home=home, show_progress=show_progress)
        result.ingested.setdefault(source, []).extend(files)
    result.binarized = binarize_flow(home=home)
    return result
