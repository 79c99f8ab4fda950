"""Seeded 95% bootstrap intervals for metrics measured on eval samples.

A metric is a mean over items (eval pairs, sampled replies, prompts). Items that share a
prompt are not independent draws (one prompt's pairs are all easy or all hard), so the
bootstrap resamples whole groups (prompts) with replacement and recomputes the mean over
the items drawn: a cluster bootstrap, which is the plain bootstrap when every group holds
one item. The interval is the percentile interval of `resamples` such means, seeded, so
the same items give the same interval every time.

Naming (docs/contract.md): a metric `m` is stored with `m_low`, `m_high` and `m_n`, the
number of items it was measured on (`named`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from tasks.common.settings import ThumbsError

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    estimate: float  # the mean over all items
    low: float
    high: float
    n: int  # items (not groups)

    def named(self, name: str) -> dict[str, float | int]:
        """{name, name_low, name_high, name_n}: the metric naming every consumer reads."""
        return {name: self.estimate, f"{name}_low": self.low, f"{name}_high": self.high, f"{name}_n": self.n}


def bootstrap_mean(values: Sequence[float], groups: Sequence[Hashable] | None = None, *, seed: int = 0,
                   resamples: int = RESAMPLES, level: float = LEVEL) -> Interval:
    """The mean of `values` with its percentile bootstrap interval, resampling `groups`
    (one label per value; None = each value its own group) with replacement."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ThumbsError("a bootstrap interval needs at least one value")
    if not np.isfinite(data).all():
        raise ThumbsError("a bootstrap interval needs finite values")
    labels = list(range(data.size)) if groups is None else list(groups)
    if len(labels) != data.size:
        raise ThumbsError(f"bootstrap: {data.size} values but {len(labels)} group labels")
    index = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    members = np.fromiter((index[label] for label in labels), dtype=np.int64, count=data.size)
    sums = np.bincount(members, weights=data, minlength=len(index))
    counts = np.bincount(members, minlength=len(index)).astype(np.float64)
    drawn = np.random.default_rng(seed).integers(0, len(index), size=(resamples, len(index)))
    means = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(data.mean()), float(low), float(high), int(data.size))


def paired_difference(candidate: Sequence[float], champion: Sequence[float],
                      groups: Sequence[Hashable] | None = None, *, seed: int = 0) -> Interval:
    """candidate − champion item by item (the same items, in the same order), with the
    bootstrap interval of its mean: what both share (an easy prompt) cancels, so the
    difference is measured far more tightly than two separate intervals would allow."""
    if len(candidate) != len(champion):
        raise ThumbsError(f"paired difference: {len(candidate)} candidate values vs {len(champion)} champion values")
    return bootstrap_mean([a - b for a, b in zip(candidate, champion)], groups, seed=seed)


INTERVAL_PARTS = ("_low", "_high", "_n")


def headline_names(metrics: dict[str, object]) -> list[str]:
    """The numeric metrics a table shows as rows, sorted: m_low, m_high and m_n go in
    m's row rather than rows of their own."""
    numeric = {k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(k for k in numeric if not any(k.endswith(p) and k[: -len(p)] in numeric for p in INTERVAL_PARTS))


def with_interval(metrics: dict[str, object], name: str, digits: int = 4) -> str:
    """'0.4375 [0.2813, 0.6250] n=32' when the metric has an interval; the value alone
    otherwise (a count as an integer); '—' when absent."""
    value = metrics.get(name)
    if not isinstance(value, (int, float)):
        return "—"
    if f"{name}_low" not in metrics:
        return str(int(value)) if float(value).is_integer() else f"{value:.{digits}f}"
    return (f"{value:.{digits}f} [{metrics[f'{name}_low']:.{digits}f}, {metrics[f'{name}_high']:.{digits}f}] "
            f"n={metrics[f'{name}_n']}")
