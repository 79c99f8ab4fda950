"""Kills on the training side — to be written by the engineer who owns training.

The issue asks for SIGKILL during snapshot writing, reference-log-prob caching
and checkpoint writing, then a re-run: the result must equal an undisturbed
run's, and no partial snapshot, cache or checkpoint may ever be visible (to
`thumbs train`, to `snapshots`/`checkpoints`, or to the champion alias).

What is ready to reuse (see harness.py and _killable.py):
- `Thumbs(argv, events, prefect_api_url=..., pause_at="<point>:<n>")` runs the real
  CLI in a subprocess against the session's Prefect server and stops at a named
  point; `.wait_for("paused")` then `.kill()` lands a SIGKILL exactly there and
  counts it in the suite's summary line. Without pause_at, `.wait_for(event)` +
  a random sleep + `.kill()` gives a kill at a random moment.
- Add the training points to _killable.py beside the ingest ones, the same way:
  wrap the function that writes (e.g. the snapshot's Parquet write before its
  rename, the reference cache's file write, the checkpoint directory's
  save/rename, the manifest write) and call `event("snapshot-written")` etc.
- `fingerprint(home)` / `compare(clean, got)` compare warehouse tables with a
  clean run (add `snapshots` and `checkpoints` to COMPARED_TABLES with their
  volatile columns excluded) and feed rows lost / duplicates to the summary.
- `partial_state_problems` is the ingest-side "nothing half-written is visible";
  the training side needs its own: every `snapshots` row's files exist with the
  recorded sha256, every `checkpoints` row's directory loads and holds a
  manifest.json, no directory without its row is taken for a checkpoint.

Scenarios to cover: kill while the snapshot Parquet is being written (and just
before it is recorded); kill while reference log-probs are cached (a re-run must
recompute or reuse a complete cache, never a truncated one); kill during
checkpoint save and between save and manifest (resume must continue from the last
complete checkpoint, and the lineage must show no checkpoint that is not whole).
"""
