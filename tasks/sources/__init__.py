"""The sources thumbs reads: one module each, found by itself.

Every module of this package that declares `SOURCE = Source(...)` (base.py) is a
source: `SOURCES` maps their names to the declarations, and the CLI's
`ingest` choices, sources.yaml's `source:` values, the loader and binarize's
per-source SQL models all start from it. A new source is a new module here
plus its SQL model (docs/add-a-source.md); nothing else lists it.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from tasks.common.settings import ThumbsError
from tasks.sources.base import Source, SourceBinding


def discover(package: str) -> dict[str, Source]:
    """Name -> declaration, for every module of `package` that declares a `SOURCE`."""
    found: dict[str, Source] = {}
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):  # sorted by name
        declared = getattr(importlib.import_module(f"{package}.{module.name}"), "SOURCE", None)
        if isinstance(declared, Source):
            if declared.name != module.name:  # so that a source is found where docs/add-a-source.md says
                raise ImportError(f"{package}.{module.name} declares source '{declared.name}': "
                                  f"a source lives in the module of its name")
            found[declared.name] = declared
    return found


SOURCES: dict[str, Source] = discover(__name__)


def find_source(name: str) -> Source:
    if name not in SOURCES:
        raise ThumbsError(f"unknown source '{name}' (use one of: {', '.join(SOURCES)})")
    return SOURCES[name]


def bind_source(source: str, *, mapping: str | Path | None = None, home: str | Path | None = None) -> SourceBinding:
    """The parser, required columns and staging tables for `source`; a source
    described by a mapping file (log) needs it."""
    return find_source(source).bind(mapping, home)


def staging_tables() -> list[str]:
    """Every source's staging tables (what binarize reads), each once, in source order."""
    return list(dict.fromkeys(table.name for source in SOURCES.values() for table in source.staging))
