"""Small charts as inline SVG, rendered on the server (no JavaScript, no external assets).

The markup is built from numbers and escaped labels only, so templates can mark it safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

import msgspec
from markupsafe import Markup

# Colour-blind friendly (Okabe-Ito), cycled per series; the legend repeats the names in text.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One series: a name and (time, value) points in time order."""

    name: str
    points: list[tuple[datetime, float]]


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def line_chart(
    title: str,
    lines: Sequence[Line],
    *,
    start: datetime,
    end: datetime,
    width: int = 480,
    height: int = 160,
    unit: str = "",
) -> Markup:
    """A line chart of several series over [start, end], with axes, a legend and a text summary.

    Args:
        title: what the chart shows (the SVG's accessible name).
        lines: the series.
        start: left edge of the time axis.
        end: right edge of the time axis.
        width: drawing width in px (the SVG scales to its container).
        height: drawing height in px.
        unit: appended to the axis maximum ("req", "%").

    Returns:
        The SVG markup.
    """
    left, right, top, bottom = 44, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for line in lines for _, v in line.points), default=0.0)
    top_value = peak if peak > 0 else 1.0
    span = max((end - start).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return left + plot_w * min(max((t - start).total_seconds() / span, 0.0), 1.0)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    totals = ", ".join(f"{line.name}: {_fmt(sum(v for _, v in line.points))}" for line in lines)
    summary = f"{title}. Peak {_fmt(peak)}{unit}. Totals: {totals or 'no data'}."
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888" />',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888" />',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10" fill="#555">'
        f"{escape(_fmt(peak))}{escape(unit)}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10" fill="#555">0</text>',
        f'<text x="{left}" y="{height - 6}" font-size="10" fill="#555">{start:%H:%M}</text>',
        f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end" font-size="10" fill="#555">'
        f"{end:%H:%M}</text>",
    ]
    for i, line in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        if len(line.points) == 1:
            (t, v) = line.points[0]
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}" />')
        elif line.points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line.points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.8" />')
    if not any(line.points for line in lines):
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="12" '
            'fill="#777">no requests in this range</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch swatch-{i % len(PALETTE)}"></span>{escape(line.name)}</li>'
        for i, line in enumerate(lines)
    )
    return Markup("".join(parts) + (f'<ul class="legend">{legend}</ul>' if len(lines) > 1 else ""))  # noqa: S704


def filled(
    points: dict[datetime, float], start: datetime, end: datetime, step_s: int
) -> list[tuple[datetime, float]]:
    """Points at every step of [start, end), zero where there is no data (so gaps show as zero)."""
    out = []
    t = start
    for _ in range(10_000):
        if t >= end:
            break
        out.append((t, points.get(t, 0.0)))
        t += timedelta(seconds=step_s)
    return out
