"""The evaluation gate and the `champion` alias.

A new checkpoint replaces the champion only if it ranks eval pairs about as well
(accuracy within a tolerance) and has not drifted too far from the reference
(KL bound). Every decision is recorded, promoted or not, with its evidence; a
rejected checkpoint stays on disk and in `checkpoints`.
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
from tasks.warehouse.connection import run_sql, transaction


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def gate(candidate: dict[str, float], champion: dict[str, float] | None, config: GateConfig) -> GateDecision:
    """Decide on eval metrics alone (names from tasks.evaluate.evaluation)."""
    accuracy = candidate.get("eval_reward_accuracy")
    kl = candidate.get("kl_to_reference")
    evidence = {"candidate": candidate, "champion": champion, "gate": config.model_dump()}
    if accuracy is None or kl is None or not (math.isfinite(accuracy) and math.isfinite(kl)):
        return GateDecision(False, "evaluation gave no finite reward accuracy and KL", evidence)
    if kl > config.max_kl:
        return GateDecision(False, f"KL to reference {kl:.3f} exceeds the bound {config.max_kl:g}", evidence)
    if champion is None:
        return GateDecision(True, f"no champion yet; KL {kl:.3f} within {config.max_kl:g}", evidence)
    floor = champion["eval_reward_accuracy"] - config.accuracy_tolerance
    if accuracy < floor:
        return GateDecision(
            False, f"eval reward accuracy {accuracy:.4f} below the champion's "
                   f"{champion['eval_reward_accuracy']:.4f} minus tolerance {config.accuracy_tolerance:g}", evidence)
    return GateDecision(
        True, f"eval reward accuracy {accuracy:.4f} >= champion's {champion['eval_reward_accuracy']:.4f} "
              f"minus {config.accuracy_tolerance:g}; KL {kl:.3f} within {config.max_kl:g}", evidence)


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


def recorded_metrics_on(champion: dict[str, Any], eval_snapshot_id: str) -> dict[str, Any] | None:
    """The champion's recorded eval metrics when they were measured on `eval_snapshot_id`;
    None when it must be evaluated again to compare on the same eval pairs."""
    recorded = champion["metrics"].get("eval", {})
    return recorded if recorded.get("eval_snapshot_id") == eval_snapshot_id else None


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
        run_sql(con, "statements/promotion/record_decision.sql", {
            "checkpoint_id": checkpoint_id, "run_id": run_id, "promoted": decision.passed,
            "previous_champion": previous_champion, "reason": decision.reason,
            "evidence": json.dumps(decision.evidence, default=str)})
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
