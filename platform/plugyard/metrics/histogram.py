"""Fixed-bucket latency histograms and the counters the query API sums (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable

from plugyard.metrics.schemas import LATENCY_BUCKETS_MS, N_BUCKETS, Counters, MetricRow, Percentiles

# Column suffix of each tail outcome in metrics_minutes / metrics_hours.
OUTCOME_COLUMNS: dict[str, str] = {
    "ok": "outcome_ok",
    "exception": "outcome_exception",
    "exceededCpu": "outcome_exceeded_cpu",
    "exceededMemory": "outcome_exceeded_memory",
    "canceled": "outcome_canceled",
    "other": "outcome_other",
}


def bucket_index(ms: float) -> int:
    """The bucket a duration falls in (the gateway uses the same rule: `ms <= bound`)."""
    for i, bound in enumerate(LATENCY_BUCKETS_MS):
        if ms <= bound:
            return i
    return len(LATENCY_BUCKETS_MS)


def percentile(counts: list[int], q: float) -> float | None:
    """Estimate the q-quantile (0 < q <= 1) from bucket counts.

    The rank is located in its bucket and interpolated linearly between the bucket's bounds
    (0 for the first); a rank in the overflow bucket answers the last bound (10 s), a lower
    bound of the true value.

    Returns:
        Milliseconds, or None when the histogram is empty.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i >= len(LATENCY_BUCKETS_MS):
                return float(LATENCY_BUCKETS_MS[-1])
            low = 0.0 if i == 0 else float(LATENCY_BUCKETS_MS[i - 1])
            high = float(LATENCY_BUCKETS_MS[i])
            return round(low + (high - low) * (rank - seen) / count, 3)
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])


class Accumulator:
    """Sums metric rows into one set of counters."""

    def __init__(self) -> None:
        self.values: dict[str, int] = dict.fromkeys(
            ("requests", "s2xx", "s3xx", "s4xx", "s5xx", "failures", *OUTCOME_COLUMNS.values()), 0
        )
        self.latency = [0] * N_BUCKETS

    def add(self, row: MetricRow) -> None:
        """Add one row."""
        for key in self.values:
            self.values[key] += getattr(row, key)
        for i, count in enumerate(row.latency):
            self.latency[i] += count

    def add_accumulator(self, other: Accumulator) -> None:
        """Add another accumulator's sums."""
        for key, value in other.values.items():
            self.values[key] += value
        for i, count in enumerate(other.latency):
            self.latency[i] += count

    def counters(self) -> Counters:
        """The summed counters with latency percentiles."""
        v = self.values
        return Counters(
            requests=v["requests"],
            errors=v["s5xx"],
            s2xx=v["s2xx"],
            s3xx=v["s3xx"],
            s4xx=v["s4xx"],
            s5xx=v["s5xx"],
            failures=v["failures"],
            outcomes={name: v[column] for name, column in OUTCOME_COLUMNS.items()},
            latency_ms=Percentiles(
                p50=percentile(self.latency, 0.50),
                p95=percentile(self.latency, 0.95),
                p99=percentile(self.latency, 0.99),
            ),
            latency_histogram=list(self.latency),
        )


def total(rows: Iterable[MetricRow]) -> Counters:
    """Sum rows into counters."""
    acc = Accumulator()
    for row in rows:
        acc.add(row)
    return acc.counters()
