"""The sources thumbs reads, each a module with a pure parser (see base.py)."""
from __future__ import annotations

from pathlib import Path

from tasks.sources.base import SourceBinding
from tasks.common.settings import ThumbsError

SOURCES = ("hh", "shp", "oasst", "log")


def bind_source(source: str, *, mapping: str | Path | None = None, home: str | Path | None = None) -> SourceBinding:
    """The parser and required columns for `source`; `log` needs its mapping file."""
    if source == "hh":
        from tasks.sources import hh

        return SourceBinding("hh", hh.parse, ("chosen", "rejected"))
    if source == "shp":
        from tasks.sources import shp

        return SourceBinding("shp", shp.parse, ("post_id", "history", "human_ref_A", "human_ref_B", "labels"))
    if source == "oasst":
        from tasks.sources import oasst

        return SourceBinding("oasst", oasst.parse)  # two layouts (flat, trees): checked per row
    if source == "log":
        if mapping is None:
            raise ThumbsError("thumbs ingest log: --mapping MAP.yaml is required (it names the log's columns)")
        from schemas.mapping import load_mapping, required_columns
        from tasks.sources.pseudonym import load_key
        from tasks.sources import log

        spec = load_mapping(mapping)
        key = load_key(home)
        return SourceBinding(
            f"log:{spec.name}", log.make_parser(spec, key), tuple(required_columns(spec)),
            {"mapping": str(mapping)}, redact=log.make_redactor(spec, key),
        )
    raise ThumbsError(f"unknown source '{source}' (use one of: {', '.join(SOURCES)})")
