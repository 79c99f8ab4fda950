"""What the reliability suite tried, for its summary line (see conftest.py).

Tests record here as they go; figures are recorded *before* a test asserts on
them, so a failing comparison still shows up in the summary with its numbers.
"""
from __future__ import annotations

from collections import Counter

bad_inputs: set[str] = set()  # malformed files and mapping files, by case name
generated_rows = 0  # rows hypothesis generated and pushed through the parsers and the loader
faults: Counter = Counter()  # kind -> how many were injected (kills that landed, disk full, ...)
hostile_queries = 0  # statements `thumbs query` had to refuse
rows_lost = 0
duplicates = 0
comparisons = 0  # warehouse-vs-clean-run comparisons that fed rows_lost / duplicates


def bad_input(name: str) -> None:
    bad_inputs.add(name)


def generated(rows: int) -> None:
    global generated_rows
    generated_rows += rows


def fault(kind: str, count: int = 1) -> None:
    faults[kind] += count


def hostile_query() -> None:
    global hostile_queries
    hostile_queries += 1


def compared(lost: int, duplicated: int) -> None:
    global rows_lost, duplicates, comparisons
    rows_lost += lost
    duplicates += duplicated
    comparisons += 1


def figures() -> dict:
    """What this process recorded, for a pytest-xdist worker to hand to the controller."""
    return {"bad_inputs": sorted(bad_inputs), "generated_rows": generated_rows, "faults": dict(faults),
            "hostile_queries": hostile_queries, "rows_lost": rows_lost, "duplicates": duplicates,
            "comparisons": comparisons}


def add(worker: dict) -> None:
    """Count a worker's figures in (the controller of a pytest-xdist run)."""
    global generated_rows, hostile_queries, rows_lost, duplicates, comparisons
    bad_inputs.update(worker["bad_inputs"])
    generated_rows += worker["generated_rows"]
    faults.update(worker["faults"])
    hostile_queries += worker["hostile_queries"]
    rows_lost += worker["rows_lost"]
    duplicates += worker["duplicates"]
    comparisons += worker["comparisons"]


def used() -> bool:
    return bool(bad_inputs or generated_rows or faults or hostile_queries or comparisons)


def summary() -> str:
    kinds = ", ".join(f"{kind} {n}" for kind, n in faults.most_common())
    return (
        f"reliability: bad inputs tried = {len(bad_inputs)} (+ {generated_rows} generated rows), "
        f"faults injected = {sum(faults.values())}" + (f" ({kinds})" if kinds else "")
        + f", hostile queries refused = {hostile_queries}, rows lost = {rows_lost}, duplicates = {duplicates} "
        f"(over {comparisons} warehouse comparisons with a clean run or the state before the fault)"
    )
