"""Metrics answers turned into chart lines (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from markupsafe import Markup

from plugyard.metrics.schemas import Counters, MetricsAnswer, Series
from plugyard.portal.charts import Line, filled, line_chart

RANGES: dict[str, tuple[timedelta, str]] = {
    "15m": (timedelta(minutes=15), "minute"),
    "1h": (timedelta(hours=1), "minute"),
    "6h": (timedelta(hours=6), "minute"),
    "24h": (timedelta(hours=24), "hour"),
    "7d": (timedelta(days=7), "hour"),
}
RANGE_LABELS = {"15m": "15 minutes", "1h": "1 hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days"}


def series_name(series: Series) -> str:
    """A readable label of a series' group."""
    parts = [p for p in (series.namespace, series.plugin, series.variant) if p]
    if series.version:
        parts.append(series.version[:8])
    return " / ".join(parts) or "all plugins"


def charts(
    answer: MetricsAnswer, metrics: dict[str, tuple[str, Callable[[Counters], float]]]
) -> dict[str, Markup]:
    """One chart per metric, one line per series, zero-filled at the answer's step."""
    step_s = 3600 if answer.step == "hour" else 60
    out = {}
    for key, (title, value) in metrics.items():
        lines = [
            Line(
                name=series_name(s),
                points=filled({p.t: value(p.counters) for p in s.points}, answer.start, answer.end, step_s),
            )
            for s in answer.series
        ]
        out[key] = line_chart(title, lines, start=answer.start, end=answer.end)
    return out


REQUESTS_AND_ERRORS: dict[str, tuple[str, Callable[[Counters], float]]] = {
    "requests": ("Requests per step", lambda c: float(c.requests)),
    "errors": ("Errors per step", lambda c: float(c.errors)),
}
LATENCY: dict[str, tuple[str, Callable[[Counters], float]]] = {
    "p95": ("p95 latency (ms)", lambda c: float(c.latency_ms.p95 or 0.0)),
}


def window(now: datetime, key: str) -> tuple[datetime, datetime, str]:
    """The [start, end) and step of a named range ending now (unknown keys mean 1 hour)."""
    span, step = RANGES.get(key, RANGES["1h"])
    return now - span, now, step
