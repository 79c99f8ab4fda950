"""`thumbs demo`: the nightly DAG on the data shipped in this repository and the
real SmolLM2-135M-Instruct, sized to finish in minutes on a 2-core CPU."""
from __future__ import annotations

from flows.nightly import nightly_flow
from tasks.common.settings import SHIPPED_ROOT
from tasks.lineage.nightly_report import NightlyReport

DEMO_SOURCES = SHIPPED_ROOT / "examples" / "sources.yaml"

# KTO on thumbs from every shipped source. Short sequences and few steps keep the
# demo to minutes on CPU; a real nightly run raises steps, batch_size and max_length.
DEMO_TRAINING = [
    "model=smollm2-135m", "steps=16", "batch_size=4", "max_length=256", "lr=5e-6",
    "warmup_steps=2", "save_every=8", "eval_batches=2", "device=cpu",
]


def demo_flow(home: str | None = None, show_progress: bool = False) -> NightlyReport:
    return nightly_flow(str(DEMO_SOURCES), algo="kto", overrides=DEMO_TRAINING, home=home,
                        show_progress=show_progress)
