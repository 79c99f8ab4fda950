"""Prefect flows of thumbs, and the `thumbs` command line."""
import os

# OpenMP threads that sleep instead of spinning while they wait. It must be set before
# torch loads OpenMP, so here: every flow (and the trainer child, which inherits the
# environment) imports this package first. On a 2-core machine shared with ingest,
# DuckDB queries or a second run, spinning threads made a SmolLM2 training step 4-5x
# slower (47 s against 10 s) and evaluation's token-by-token decoding 15x slower
# (181 s against 12 s), measured; on an idle machine the cost is small.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
