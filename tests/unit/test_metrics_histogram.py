"""Histogram buckets, percentiles and the Prometheus text format (no I/O)."""

from __future__ import annotations

import pytest

from plugyard.metrics import exposition
from plugyard.metrics.histogram import bucket_index, percentile
from plugyard.metrics.schemas import LATENCY_BUCKETS_MS, N_BUCKETS


@pytest.mark.parametrize(
    ("ms", "index"), [(0, 0), (1, 0), (1.5, 1), (2, 1), (3, 2), (30, 5), (10000, 12), (10001, 13), (1e9, 13)]
)
def test_a_duration_goes_in_the_first_bucket_it_fits(ms: float, index: int) -> None:
    assert bucket_index(ms) == index


def test_percentiles_interpolate_inside_the_right_bucket() -> None:
    counts = [0] * N_BUCKETS
    counts[bucket_index(30)] = 90  # (20, 50]
    counts[bucket_index(150)] = 10  # (100, 200]
    p50 = percentile(counts, 0.5)
    p95 = percentile(counts, 0.95)
    assert p50 is not None
    assert p95 is not None
    assert 20 < p50 <= 50
    assert 100 < p95 <= 200
    assert percentile(counts, 0.99) == pytest.approx(190.0)
    assert percentile([0] * N_BUCKETS, 0.5) is None


def test_the_overflow_bucket_answers_the_last_bound() -> None:
    counts = [0] * N_BUCKETS
    counts[-1] = 3
    assert percentile(counts, 0.5) == LATENCY_BUCKETS_MS[-1]


def test_exposition_escapes_labels_and_accumulates_histograms() -> None:
    assert exposition.labels({"gateway": 'a"b\\c\nd'}) == '{gateway="a\\"b\\\\c\\nd"}'
    hist = exposition.Histogram("x_seconds", "help", (1, 5))
    for value in (0.5, 2, 9):
        hist.observe(value)
    lines = hist.lines()
    assert 'x_seconds_bucket{le="1"} 1' in lines
    assert 'x_seconds_bucket{le="5"} 2' in lines
    assert 'x_seconds_bucket{le="+Inf"} 3' in lines
    assert "x_seconds_count 3" in lines
