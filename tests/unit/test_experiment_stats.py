"""Experiment statistics and the guardrail decision, checked against textbook values."""

from __future__ import annotations

import math

import pytest

from plugyard.experiments import stats
from plugyard.experiments.guardrail import evaluate
from plugyard.experiments.results import Traffic


@pytest.mark.parametrize(
    ("chi2", "df", "p"),
    [
        (3.841458820694124, 1, 0.05),
        (5.991464547107979, 2, 0.05),
        (13.815510557964274, 2, 0.001),
        (7.814727903251178, 3, 0.05),
        (0.0, 2, 1.0),
        (100.0, 1, 1.5239706048320995e-23),
        (30.0, 20, 0.0698536),
    ],
)
def test_chi_square_p_values(chi2: float, df: int, p: float) -> None:
    assert stats.chi_square_p(chi2, df) == pytest.approx(p, rel=1e-5)


def test_normal_cdf() -> None:
    assert stats.normal_cdf(1.959963984540054) == pytest.approx(0.975)
    assert stats.normal_cdf(0) == 0.5


def test_srm_flags_a_60_40_split_against_50_50() -> None:
    flagged = stats.srm([6000, 4000], [0.5, 0.5])
    assert flagged.chi_square == pytest.approx(400.0)
    assert flagged.mismatch
    assert flagged.p_value < 1e-80
    fine = stats.srm([5030, 2980, 1990], [0.5, 0.3, 0.2])
    assert not fine.mismatch
    assert fine.p_value > 0.001


def test_wilson_interval() -> None:
    low, high = stats.wilson(10, 100)
    assert (low, high) == pytest.approx((0.0552, 0.1744), abs=1e-4)  # the textbook 10/100 case
    assert stats.wilson(0, 0) == (0.0, 0.0)


def test_compare_two_proportions() -> None:
    c = stats.compare(100, 1000, 130, 1000)
    assert c is not None
    assert c.difference == pytest.approx(0.03)
    assert c.lift == pytest.approx(0.3)
    se = math.sqrt(0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000)
    assert c.difference_ci == pytest.approx((0.03 - 1.959963984540054 * se, 0.03 + 1.959963984540054 * se))
    assert c.p_value == pytest.approx(0.0357, abs=5e-4)
    assert stats.compare(0, 0, 1, 2) is None


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    bounds = (1, 2, 5, 10)
    assert stats.histogram_quantile([0, 0, 10, 0, 0], bounds, 0.5) == pytest.approx(3.5)
    assert stats.histogram_quantile([0, 0, 0, 0, 4], bounds, 0.95) == 10
    assert stats.histogram_quantile([0] * 5, bounds, 0.5) is None


def _traffic(requests: int, errors: int) -> Traffic:
    return Traffic(requests=requests, errors=errors)


def test_error_rate_guardrail_trips_only_when_significantly_worse_by_the_margin() -> None:
    rail = {"metric": "error_rate", "margin": 0.05, "min_requests": 50, "alpha": 0.01}
    assert evaluate(rail, "control", {"control": _traffic(100, 1), "b": _traffic(100, 50)})["variant"] == "b"
    assert evaluate(rail, "control", {"control": _traffic(100, 1), "b": _traffic(100, 5)}) is None
    assert evaluate(rail, "control", {"control": _traffic(100, 0), "b": _traffic(40, 40)}) is None  # too few
