"""Charts as inline SVG strings: the report is one file that opens from disk, so no
charting library, CDN or script draws them.

Every data point is an element of its own (`circle.point` in line charts,
`rect.bar` in bar charts) carrying its values in data- attributes and a <title>
tooltip, so a browser test can count them and a reader can hover them. Every text
that comes from data is escaped here.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 48  # margins around the plot area, in SVG units

Point = tuple[float, float]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high == low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def _legend(names: Sequence[str], y: float) -> str:
    items, x = [], LEFT
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        items.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{y}" class="legend">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(items)


def line_chart(chart: str, series: dict[str, list[Point]], *, y_label: str,
               x_labels: dict[float, str] | None = None, y_range: tuple[float, float] | None = None) -> str:
    """One line per series over a shared numeric x axis (steps, or day indexes named by
    `x_labels`); a series of one point is still drawn, as its marker."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f'<p class="empty" data-chart-empty="{escape(chart)}">no data yet</p>'
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = y_range or (min(0.0, min(ys)), max(ys))
    if y_high == y_low:
        y_high = y_low + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (plot_w / 2 if x_high == x_low else (x - x_low) / (x_high - x_low) * plot_w)

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    parts = [f'<svg class="chart" data-chart="{escape(chart)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(y_label)}">']
    for tick in _ticks(y_low, y_high):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{sy(tick) + 4:.1f}" class="tick" text-anchor="end">'
                     f'{_number(tick)}</text>')
    x_ticks = sorted(x_labels) if x_labels else sorted(set(_ticks(x_low, x_high)))
    step = max(1, len(x_ticks) // 8)  # at most ~8 labels under the axis
    for tick in x_ticks[::step]:
        label = x_labels[tick] if x_labels else _number(tick)
        parts.append(f'<text x="{sx(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" text-anchor="middle">'
                     f'{escape(label)}</text>')
    parts.append(f'<text x="12" y="{TOP + plot_h / 2:.1f}" class="axis" '
                 f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})" text-anchor="middle">{escape(y_label)}</text>')
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        values = sorted(values)
        if len(values) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        radius = 3 if len(values) < 60 else 1.5
        for x, y in values:
            label = x_labels.get(x, _number(x)) if x_labels else _number(x)
            parts.append(f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{color}" '
                         f'data-series="{escape(name)}" data-x="{escape(label)}" data-y="{y!r}">'
                         f'<title>{escape(name)} at {escape(label)}: {_number(y)}</title></circle>')
    parts.append(_legend(list(series), HEIGHT - 8))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(chart: str, bars: list[tuple[str, float]], *, x_label: str) -> str:
    """Horizontal bars, one per (label, value), longest scale first as given."""
    if not bars:
        return f'<p class="empty" data-chart-empty="{escape(chart)}">nothing to show</p>'
    row, label_w = 22, 260
    height = TOP + row * len(bars) + 28
    high = max(value for _, value in bars) or 1
    plot_w = WIDTH - label_w - RIGHT - 48
    parts = [f'<svg class="chart" data-chart="{escape(chart)}" viewBox="0 0 {WIDTH} {height}" '
             f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(x_label)}">']
    for i, (label, value) in enumerate(bars):
        y = TOP + i * row
        width = max(1.0, value / high * plot_w)  # a zero still shows as a sliver, not as nothing
        short = label if len(label) <= 40 else label[:39] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" class="tick" text-anchor="end">{escape(short)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" '
                     f'fill="{PALETTE[0]}" data-label="{escape(label)}" data-value="{value!r}">'
                     f'<title>{escape(label)}: {_number(value)}</title></rect>'
                     f'<text x="{label_w + width + 4:.1f}" y="{y + 14}" class="tick">{_number(value)}</text>')
    parts.append(f'<text x="{label_w + plot_w / 2:.1f}" y="{height - 6}" class="axis" text-anchor="middle">'
                 f'{escape(x_label)}</text></svg>')
    return "".join(parts)
