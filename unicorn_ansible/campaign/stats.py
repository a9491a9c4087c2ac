"""Means and 95% confidence intervals, with the standard library only.

The interval of a mean of n samples is mean ± t · s / √n, with s the sample standard deviation
and t the two-sided 95% quantile of Student's t-distribution with n - 1 degrees of freedom:
from the table below up to 30, then interpolated in 1/df towards the normal's 1.96 (the error
of that interpolation is below 0.001 everywhere past 30).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: two-sided 95% quantiles of Student's t by degrees of freedom (1 to 30)
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
       2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
#: beyond the table: (degrees of freedom, quantile), down to the normal distribution's
T95_TAIL = ((30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960))


def t95(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    if df <= len(T95):
        return T95[df - 1]
    for (low_df, low), (high_df, high) in zip(T95_TAIL, T95_TAIL[1:]):
        if df <= high_df:
            share = (1 / low_df - 1 / df) / (1 / low_df - (0 if math.isinf(high_df) else 1 / high_df))
            return low + (high - low) * share
    return T95_TAIL[-1][1]  # pragma: no cover - the last bound is infinite


@dataclass(frozen=True)
class Interval:
    """A mean of ``n`` samples and its 95% confidence interval (``low`` = ``high`` = mean for one sample)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_interval(samples: Sequence[float]) -> Interval:
    """The mean of ``samples`` (at least one) with its 95% confidence interval."""
    n = len(samples)
    if n == 0:
        raise ValueError("a mean needs at least one sample")
    mean = math.fsum(samples) / n
    if n == 1:
        return Interval(mean, mean, mean, 1)
    deviation = math.sqrt(math.fsum((x - mean) ** 2 for x in samples) / (n - 1))
    half = t95(n - 1) * deviation / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)
