"""THUMBS_HOME and where each kind of state lives under it.

`Home` is the one place that knows the layout; code asks `home.checkpoints` instead
of joining "checkpoints" onto a path it was handed. Flows take `home` as a string
(deployments pass strings) and convert it once, at the edge, with `Home.of`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tasks.common.settings import ThumbsError

HomeLike = str | os.PathLike | None


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def of(cls, home: HomeLike = None) -> Home:
        """`home` (a Home, or a path), else $THUMBS_HOME, else ./.thumbs; made absolute
        (a child process runs elsewhere) and created on demand."""
        if isinstance(home, Home):
            return home
        chosen = Path(home or os.environ.get("THUMBS_HOME") or ".thumbs").expanduser().resolve()
        try:
            chosen.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ThumbsError(f"{chosen}: cannot create THUMBS_HOME ({exc.strerror})") from exc
        return cls(chosen)

    # A Home is a path: it can be handed to anything that takes THUMBS_HOME as a path or string.
    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    @property
    def warehouse(self) -> Path:
        """The live DuckDB file; only the writing process opens it."""
        return self.root / "warehouse.duckdb"

    @property
    def raw_archive(self) -> Path:
        """The files ingested, each kept once under its sha256: what raw.records reads."""
        return self.root / "raw"

    @property
    def published(self) -> Path:
        """The analysts' read-only copy of the warehouse, swapped in after each write."""
        return self.root / "published" / "warehouse.duckdb"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def champion(self) -> Path:
        """The symlink serving code loads; it points into `checkpoints`."""
        return self.checkpoints / "champion"

    @property
    def exports(self) -> Path:
        """`thumbs export` output: full-weight copies of checkpoints (LoRA ones merged)."""
        return self.root / "exports"

    @property
    def runs(self) -> Path:
        """One directory per training run: config, metrics, log, resumable state."""
        return self.root / "runs"

    @property
    def evaluations(self) -> Path:
        return self.root / "evaluations"

    @property
    def openlineage(self) -> Path:
        """OpenLineage run events, one JSON object a line."""
        return self.root / "lineage" / "openlineage.jsonl"

    @property
    def reference_cache(self) -> Path:
        return self.root / "cache" / "reference"

    @property
    def pseudonym_key(self) -> Path:
        return self.root / "secrets" / "pseudonym.key"

    def lock(self, name: str) -> Path:
        return self.root / f"{name}.lock"
