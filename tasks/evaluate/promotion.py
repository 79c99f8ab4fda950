"""The evaluation gate and the `champion` alias.

A new checkpoint replaces the champion only if, measured on the SAME eval pairs, it
is not worse beyond a tolerance at 95% confidence, and it has not drifted too far
from the reference (KL bound). The comparison is a paired bootstrap: per pair,
candidate right (1) or wrong (0) minus champion right or wrong, resampled by prompt
(tasks/evaluate/intervals.py). With the difference's interval [low, high]:

- low > 0: better; promoted.
- −tolerance <= low <= 0: not worse beyond the tolerance, no measurable gain; promoted.
- high < 0 and low < −tolerance: worse; refused.
- otherwise the interval is wider than the tolerance allows: the difference is not
  measurable on these pairs, so it is refused and the reason says so (more eval pairs
  narrow it).

Every decision is recorded, promoted or not, with its verdict, the interval and the
reason; a rejected checkpoint stays on disk and in `checkpoints`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from schemas.nightly import GateConfig
from tasks.common.files import replaced_file
from tasks.common.home import Home, HomeLike
from tasks.evaluate.evaluation import same_protocol
from tasks.evaluate.intervals import Interval, paired_difference
from tasks.warehouse.connection import run_sql, transaction

COMPARED = "eval_reward_accuracy"  # the metric the gate compares, pair by pair
# What the terminal prints first: the decision in a few words, worded from the interval.
HEADLINES = {
    "first": "PROMOTED (first champion)",
    "better": "PROMOTED: better than the champion",
    "not_worse": "PROMOTED: no measurable difference, not worse than the champion beyond the tolerance",
    "worse": "NOT promoted: worse than the champion",
    "unmeasurable": "NOT promoted: the difference from the champion is not measurable on these pairs",
    "kl_exceeded": "NOT promoted: drifted beyond the KL bound",
    "not_comparable": "NOT promoted: not compared on the same eval pairs",
    "no_metrics": "NOT promoted: no usable evaluation",
}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    verdict: str = "no_metrics"  # a HEADLINES key
    difference: Interval | None = None  # candidate − champion accuracy on the same pairs

    @property
    def headline(self) -> str:
        return HEADLINES[self.verdict]


def correct_per_pair(per_pair: dict[str, list]) -> dict[str, float]:
    """row_id -> 1.0 when the pair was ranked right (chosen reward > rejected), else 0.0."""
    return {row: float(c > r) for row, c, r in zip(per_pair["row_ids"], per_pair["chosen"], per_pair["rejected"])}


def accuracy_interval(metrics: dict[str, Any]) -> str:
    """'0.562 [0.437, 0.688] on 32 pairs', from the stored interval when there is one."""
    accuracy = metrics[COMPARED]
    if f"{COMPARED}_low" not in metrics:
        return f"{accuracy:.3f}"
    return (f"{accuracy:.3f} [{metrics[f'{COMPARED}_low']:.3f}, {metrics[f'{COMPARED}_high']:.3f}] "
            f"on {metrics[f'{COMPARED}_n']} pairs")


def compare_on_same_pairs(candidate: dict[str, list], champion: dict[str, list], seed: int = 0) -> Interval | None:
    """The paired bootstrap of candidate − champion correctness; None when the two were
    not evaluated on the same pairs."""
    mine, theirs = correct_per_pair(candidate), correct_per_pair(champion)
    if set(mine) != set(theirs):
        return None
    return paired_difference([mine[r] for r in candidate["row_ids"]], [theirs[r] for r in candidate["row_ids"]],
                             candidate["groups"], seed=seed)


def verdict_of(difference: Interval, tolerance: float) -> str:
    if difference.low > 0:
        return "better"
    if difference.low >= -tolerance:
        return "not_worse"
    return "worse" if difference.high < 0 else "unmeasurable"


def gate(candidate: dict[str, Any], champion: dict[str, Any] | None, config: GateConfig) -> GateDecision:
    """Decide on eval metrics (names from tasks.evaluate.evaluation); `per_pair` in each
    (evaluate's per-pair rewards) is what makes the paired comparison possible."""
    accuracy, kl = candidate.get(COMPARED), candidate.get("kl_to_reference")
    evidence = {"candidate": _summary(candidate), "champion": champion and _summary(champion),
                "gate": config.model_dump()}
    if accuracy is None or kl is None or not (math.isfinite(accuracy) and math.isfinite(kl)):
        return GateDecision(False, "evaluation gave no finite reward accuracy and KL", evidence)
    kl_text = f"KL {kl:.3f}" + (f" [{candidate['kl_to_reference_low']:.3f}, {candidate['kl_to_reference_high']:.3f}]"
                                if "kl_to_reference_low" in candidate else "")
    if kl > config.max_kl:
        return GateDecision(False, f"KL to reference {kl:.3f} exceeds the bound {config.max_kl:g}", evidence,
                            "kl_exceeded")
    if champion is None:
        chance = f"{COMPARED}_low" in candidate and candidate[f"{COMPARED}_low"] <= 0.5 <= candidate[f"{COMPARED}_high"]
        return GateDecision(True, f"no champion yet; eval reward accuracy {accuracy_interval(candidate)}"
                                  f"{' (not distinguishable from chance, 0.5)' if chance else ''}; "
                                  f"{kl_text} within {config.max_kl:g}", evidence, "first")
    if not (candidate.get("per_pair") and champion.get("per_pair")):
        return GateDecision(False, "no per-pair results for both checkpoints: evaluate both on the same eval "
                                   "pairs to compare them", evidence, "not_comparable")
    difference = compare_on_same_pairs(candidate["per_pair"], champion["per_pair"])
    if difference is None:
        return GateDecision(False, "candidate and champion were evaluated on different eval pairs", evidence,
                            "not_comparable")
    verdict, tolerance = verdict_of(difference, config.accuracy_tolerance), config.accuracy_tolerance
    evidence["difference"] = {"estimate": difference.estimate, "low": difference.low, "high": difference.high,
                              "n": difference.n}
    measured = (f"accuracy difference candidate − champion {difference.estimate:+.3f} "
                f"[{difference.low:+.3f}, {difference.high:+.3f}] (95%, paired bootstrap on {difference.n} pairs; "
                f"candidate {accuracy_interval(candidate)}, champion {accuracy_interval(champion)})")
    because = {
        "better": f"better: the whole interval is above 0; {kl_text} within {config.max_kl:g}",
        "not_worse": f"no measurable difference, and not worse beyond the tolerance {tolerance:g} "
                     f"(interval's low end {difference.low:+.3f} >= −{tolerance:g}); {kl_text} within "
                     f"{config.max_kl:g}",
        "worse": f"worse: the whole interval is below 0 and reaches below −{tolerance:g}",
        "unmeasurable": f"the difference is not measurable on {difference.n} pairs: the interval reaches below "
                        f"−{tolerance:g} and above 0; evaluate on more pairs (max_pairs) or train longer",
    }[verdict]
    return GateDecision(verdict in ("better", "not_worse"), f"{because}; {measured}", evidence, verdict, difference)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the per-pair lists: the evidence stays a few hundred bytes."""
    return {k: v for k, v in metrics.items() if k != "per_pair"}


def what_changed(champion_manifest: dict[str, Any], config: dict[str, Any], snapshot_id: str,
                 code: str) -> list[str]:
    """Why training would give another model than the champion: a new snapshot, other
    training options, or other code. Empty means retraining would repeat the champion."""
    changes = []
    if champion_manifest.get("snapshot_id") != snapshot_id:
        changes.append(f"snapshot {champion_manifest.get('snapshot_id')} -> {snapshot_id}")
    trained_with = champion_manifest.get("config", {})
    options = [f"{key} {trained_with.get(key)!r} -> {value!r}" for key, value in sorted(config.items())
               if trained_with.get(key) != value]
    if options:
        changes.append("training options " + ", ".join(options))
    if champion_manifest.get("code_version") != code:
        changes.append(f"code {champion_manifest.get('code_version')} -> {code}")
    return changes


def recorded_metrics_on(champion: dict[str, Any], candidate_evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """The champion's recorded evaluation when it measured the candidate's eval pairs the
    same way and kept per-pair results; None when it must be evaluated again."""
    recorded = champion["metrics"].get("eval", {})
    return recorded if recorded.get("per_pair") and same_protocol(recorded, candidate_evaluation) else None


def current_champion(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    row = run_sql(con, "statements/promotion/champion.sql").fetchall()
    if not row:
        return None
    checkpoint_id, path, snapshot_id, metrics, algo = row[0]
    return {"checkpoint_id": checkpoint_id, "path": path, "snapshot_id": snapshot_id,
            "metrics": json.loads(metrics) if metrics else {}, "algo": algo}


def record_decision(con: duckdb.DuckDBPyConnection, checkpoint_id: str, run_id: str | None,
                    decision: GateDecision, previous_champion: str | None) -> None:
    with transaction(con):
        difference = decision.difference
        run_sql(con, "statements/promotion/record_decision.sql", {
            "checkpoint_id": checkpoint_id, "run_id": run_id, "promoted": decision.passed,
            "previous_champion": previous_champion, "reason": decision.reason,
            "evidence": json.dumps(decision.evidence, default=str), "verdict": decision.verdict,
            "metric": COMPARED if difference else None, "difference": difference and difference.estimate,
            "difference_low": difference and difference.low, "difference_high": difference and difference.high,
            "pairs": difference and difference.n,
            "tolerance": decision.evidence.get("gate", {}).get("accuracy_tolerance")})
        if decision.passed:
            run_sql(con, "statements/promotion/mark_promoted.sql", {"checkpoint_id": checkpoint_id})


def point_champion_alias(checkpoint_path: str | Path, home: HomeLike = None) -> Path:
    """THUMBS_HOME/checkpoints/champion -> the checkpoint, replaced atomically.

    Serving code loads `from_pretrained(".../checkpoints/champion")` and never sees
    a half-switched alias: a new symlink is made beside the old and renamed over it.
    """
    alias = Home.of(home).champion
    with replaced_file(alias) as fresh:
        os.symlink(Path(checkpoint_path).resolve(), fresh)
    return alias
