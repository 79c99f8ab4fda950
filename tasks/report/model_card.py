"""README.md in every checkpoint: a Hugging Face model card (YAML metadata, then markdown).

Written with the checkpoint, inside its atomic write (tasks/train/checkpoints.py),
then rewritten whole, by rename, when the checkpoint is evaluated or meets the gate.
The card keeps what it was built from under the `thumbs` metadata key, so each
update merges the new evaluation or decision into the rest and renders it again.
huggingface_hub's ModelCard parses it (and the Hub shows it) like any other card.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from tasks.common.files import replaced_file
from tasks.common.home import HomeLike

CARD_FILE = "README.md"
MANIFEST_FILE = "manifest.json"

# What a preset's weights are on the Hub, and their license (the card's `license`).
PRESET_MODELS = {
    "smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "tiny-llama": (None, "apache-2.0"),  # random weights made by thumbs, licensed like the project
}
# Per source: its dataset on the Hub, and the license of its rows (docs/sources.md says what each is).
SOURCE_DATA = {
    "hh": ("Anthropic/hh-rlhf", "MIT, © 2022 Anthropic"),
    "shp": ("stanfordnlp/SHP", "Reddit content collected by Stanford; see the dataset card for its terms"),
    "oasst": ("OpenAssistant/oasst1", "Apache-2.0, LAION / OpenAssistant"),
}
LOG_DATA = (None, "your own feedback log: its terms and your users' consent are yours to check")
CARD_METRICS = ("eval_reward_accuracy", "eval_reward_margin", "kl_to_reference", "mean_generated_length")


def source_data(source: str) -> tuple[str | None, str]:
    if source.startswith("log:"):
        return LOG_DATA
    return SOURCE_DATA.get(source, (None, "see docs/sources.md"))


def source_files(snapshot_path: str | None, home: HomeLike) -> list[dict[str, Any]]:
    """The files whose rows the snapshot holds, from the published copy's ingest runs;
    empty when there is no published copy to ask (the card says so)."""
    from tasks.common.settings import ThumbsError
    from tasks.lineage.history import snapshot_batches
    from tasks.warehouse.connection import run_sql
    from tasks.warehouse.query import published_connection

    try:
        batches = snapshot_batches(Path(snapshot_path)) if snapshot_path else []
        with published_connection(home) as con:
            rows = run_sql(con, "statements/history/batches.sql", {"batch_ids": batches}).fetchall()
    except (ThumbsError, OSError):
        return []
    return [{"source": source, "file": file, "sha256": sha, "rows_loaded": loaded}
            for _, source, file, sha, loaded, *_ in rows]  # then finished_at, options


def card_facts(manifest: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """What the card is built from, kept in its metadata under `thumbs`; a key the
    manifest lacks stays empty rather than failing the checkpoint's write."""
    return {"checkpoint_id": manifest["checkpoint_id"], "algo": manifest.get("algo"),
            "base_model": (manifest.get("base_model") or {}).get("name"), "config": manifest.get("config") or {},
            "snapshot_id": manifest.get("snapshot_id"),
            "snapshot_row_counts": manifest.get("snapshot_row_counts") or {},
            "rows_trained": manifest.get("rows_trained"), "code_version": manifest.get("code_version"),
            "training_metrics": manifest.get("metrics") or {}, "source_files": files, "evaluation": None, "gate": None}


def render_card(facts: dict[str, Any]) -> ModelCard:
    hub_model, license_id = PRESET_MODELS.get(facts["base_model"], (None, "other"))
    sources = sorted({s for split in facts["snapshot_row_counts"].values() for s in (split.get("by_source") or {})})
    datasets = sorted({hub for hub, _ in map(source_data, sources) if hub})
    evaluation = facts.get("evaluation") or {}
    results = [EvalResult(task_type="text-generation", dataset_type="thumbs-eval-snapshot",
                          dataset_name=f"eval pairs of snapshot {evaluation.get('eval_snapshot_id')}",
                          dataset_split="eval", metric_type=name, metric_value=evaluation[name],
                          metric_name=f"{name} {_with_interval(evaluation, name)}",
                          metric_args=_interval(evaluation, name))
               for name in CARD_METRICS if isinstance(evaluation.get(name), (int, float))]
    data = ModelCardData(
        base_model=hub_model, datasets=datasets or None, license=license_id,
        license_name="see the base model" if license_id == "other" else None,
        library_name="transformers", pipeline_tag="text-generation",
        tags=[t for t in ("thumbs", facts["algo"], "alignment", "human-feedback") if t],
        model_name=facts["checkpoint_id"],
        eval_results=results or None, thumbs=facts)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{_body(facts, sources)}")


def _interval(evaluation: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = {s: evaluation.get(f"{name}_{s}") for s in ("low", "high", "n")}
    return {k: v for k, v in found.items() if v is not None} or None


def _with_interval(evaluation: dict[str, Any], name: str) -> str:
    """`0.4375 [0.27, 0.6] n=32`: the value, and its interval when one was recorded."""
    text = f"{evaluation[name]:.4g}"
    interval = _interval(evaluation, name) or {}
    if "low" in interval and "high" in interval:
        text += f" [{interval['low']:.4g}, {interval['high']:.4g}]"
    if "n" in interval:
        text += f" n={interval['n']}"
    return text


def _body(facts: dict[str, Any], sources: list[str]) -> str:
    config = facts["config"]
    lines = [f"# {facts['checkpoint_id']}", "",
             f"A `{facts['algo']}` fine-tune of `{facts['base_model']}` trained by thumbs on "
             f"{facts['rows_trained']} rows of snapshot `{facts['snapshot_id']}` (code {facts['code_version']}). "
             "It loads with `AutoModelForCausalLM.from_pretrained` on this directory; `manifest.json` beside "
             "this card holds the full lineage.", "",
             "## Training", "", "| option | value |", "|---|---|"]
    lines += [f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(config.items()) if v is not None]
    lines += ["", "## Data", "", "| source | license | hub dataset |", "|---|---|---|"]
    for source in sources:
        hub, terms = source_data(source)
        lines.append(f"| {source} | {terms} | {hub or '—'} |")
    lines += ["", "Files ingested into the snapshot:", ""]
    lines += [f"- `{f['file']}` ({f['source']}, {f['rows_loaded']} rows, sha256 `{f['sha256'][:16]}…`)"
              for f in facts["source_files"]] or ["- not known here (no published warehouse was found)"]
    lines += ["", "## Evaluation", ""]
    evaluation = facts.get("evaluation")
    if evaluation:
        lines += [f"On the eval pairs of snapshot `{evaluation.get('eval_snapshot_id')}`:", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_with_interval(evaluation, name)} |" for name in sorted(evaluation)
                  if isinstance(evaluation[name], (int, float)) and not name.endswith(("_low", "_high", "_n"))]
    else:
        lines.append("Not evaluated yet (`thumbs evaluate " + facts["checkpoint_id"] + "`).")
    lines += ["", "## Gate decision", ""]
    gate = facts.get("gate")
    lines.append(f"**{'promoted to champion' if gate['promoted'] else 'not promoted'}** "
                 f"({gate['decided_at']}): {gate['reason']}" if gate else "No gate decision yet.")
    lines += ["", "## Known limits", "",
              f"- Trained for {facts['training_metrics'].get('steps', config.get('steps'))} steps; the metrics "
              "above are implicit-reward ranking and KL on held-out pairs of the same sources, not a measure "
              "of helpfulness or safety in general.",
              "- The base model's limits and license apply; the data's licenses above apply to what it learned.",
              "- Human feedback carries its raters' preferences and biases, and logs their users'.", ""]
    return "\n".join(lines)


def write_model_card(directory: Path, manifest: dict[str, Any], home: HomeLike = None) -> Path:
    """The first card, written into a checkpoint directory being built (its scratch)."""
    card = render_card(card_facts(manifest, source_files(manifest.get("snapshot_path"), home)))
    card.save(directory / CARD_FILE)
    return directory / CARD_FILE


def update_model_card(checkpoint_dir: str | Path, home: HomeLike = None, *, evaluation: dict[str, Any] | None = None,
                      gate: dict[str, Any] | None = None) -> Path | None:
    """Merge an evaluation or a gate decision into a thumbs checkpoint's card, rewritten
    by rename. Other model directories (a preset, a base model) are never written."""
    directory = Path(checkpoint_dir)
    if not (directory / MANIFEST_FILE).is_file():
        return None
    card_file = directory / CARD_FILE
    if card_file.is_file():
        facts = ModelCard.load(card_file).data.to_dict().get("thumbs")
    else:  # a checkpoint written before cards existed
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        facts = card_facts(manifest, source_files(manifest.get("snapshot_path"), home))
    if evaluation is not None:
        facts["evaluation"] = evaluation
    if gate is not None:
        facts["gate"] = gate
    with replaced_file(card_file) as scratch:
        render_card(facts).save(scratch)
    return card_file
