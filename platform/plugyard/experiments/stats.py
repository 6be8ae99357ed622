"""Experiment statistics as pure functions (no I/O, no scipy): docs/experiments.md, "Statistics".

- Conversion rate intervals: Wilson score interval at 95 %.
- Lift vs control: difference of proportions with the unpooled standard error; relative lift is
  the difference over the control rate (its interval likewise); p-value from the pooled
  two-proportion z-test.
- Sample-ratio mismatch: Pearson chi-square against the configured weights, p from the
  regularised upper incomplete gamma function Q(k/2, x/2); flagged at p < 0.001.
- Normal CDF via math.erfc.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

Z95 = 1.959963984540054  # two-sided 95 %
SRM_ALPHA = 0.001


def normal_cdf(z: float) -> float:
    """Φ(z), the standard normal CDF."""
    return 0.5 * math.erfc(-z / math.sqrt(2))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 0) when n is 0."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """A variant against the control: difference, relative lift with 95 % intervals, p-value."""

    difference: float
    difference_ci: tuple[float, float]
    lift: float | None
    lift_ci: tuple[float, float] | None
    z: float
    p_value: float


def compare(x_c: int, n_c: int, x_v: int, n_v: int, z: float = Z95) -> Comparison | None:
    """Two-proportion comparison of a variant (x_v of n_v) against the control (x_c of n_c)."""
    if n_c == 0 or n_v == 0:
        return None
    p_c, p_v = x_c / n_c, x_v / n_v
    diff = p_v - p_c
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_v * (1 - p_v) / n_v)
    pooled = (x_c + x_v) / (n_c + n_v)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_v))
    stat = 0.0 if se0 == 0 else diff / se0
    ci = (diff - z * se, diff + z * se)
    return Comparison(
        difference=diff,
        difference_ci=ci,
        lift=None if p_c == 0 else diff / p_c,
        lift_ci=None if p_c == 0 else (ci[0] / p_c, ci[1] / p_c),
        z=stat,
        p_value=math.erfc(abs(stat) / math.sqrt(2)),
    )


def worse_by_margin(x_c: int, n_c: int, x_v: int, n_v: int, margin: float) -> float:
    """One-sided p-value of H0: p_v - p_c <= margin (small p: the variant is worse by more)."""
    p_c, p_v = x_c / n_c, x_v / n_v
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_v * (1 - p_v) / n_v)
    excess = p_v - p_c - margin
    if se == 0:
        return 0.0 if excess > 0 else 1.0
    return 0.5 * math.erfc((excess / se) / math.sqrt(2))


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's method for the continued fraction of Q.
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def chi_square_p(statistic: float, df: int) -> float:
    """Upper-tail p-value of a chi-square statistic with df degrees of freedom."""
    return _gamma_q(df / 2, statistic / 2)


class SampleRatio(msgspec.Struct, frozen=True, kw_only=True):
    """The sample-ratio-mismatch check."""

    observed: list[int]
    expected: list[float]
    chi_square: float
    df: int
    p_value: float
    mismatch: bool


def srm(observed: Sequence[int], weights: Sequence[float], alpha: float = SRM_ALPHA) -> SampleRatio:
    """Pearson chi-square of observed counts against the configured weights."""
    total = sum(observed)
    wsum = sum(weights)
    expected = [total * w / wsum for w in weights]
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    df = len(observed) - 1
    p = 1.0 if total == 0 else chi_square_p(stat, df)
    return SampleRatio(
        observed=list(observed), expected=expected, chi_square=stat, df=df, p_value=p, mismatch=p < alpha
    )


def histogram_quantile(counts: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The q-quantile of a latency histogram, interpolated linearly inside its bucket.

    `counts` has one more element than `bounds` (the overflow bucket, reported as the last bound).
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            low = 0.0 if i == 0 else float(bounds[i - 1])
            return low + (float(bounds[i]) - low) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


def share_above(counts: Sequence[int], bounds: Sequence[float], threshold: float) -> int:
    """Requests in buckets that lie entirely above `threshold` (a lower bound of the slow count)."""
    slow = 0
    for i, count in enumerate(counts):
        low = 0.0 if i == 0 else float(bounds[i - 1])
        if low >= threshold:
            slow += count
    return slow


class VariantResult(msgspec.Struct, frozen=True, kw_only=True):
    """One variant's figures in the current phase."""

    name: str
    version: int
    weight: float
    exposures: int
    visitors: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    conversions: int
    conversion_rate: float
    conversion_ci: tuple[float, float]
    vs_control: Comparison | None


class Results(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment's results (docs/experiments.md, "Results")."""

    key: str
    state: str
    phase: int
    since: str | None
    event: str | None
    events: list[str]
    variants: list[VariantResult]
    sample_ratio: SampleRatio
    guardrail_trip: dict[str, object] | None
    visitors_method: str
