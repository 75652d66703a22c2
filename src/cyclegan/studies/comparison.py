"""The statistics of a seeded study: a quantity's spread over seeds, and a variant against a baseline.

A difference counts only when it exceeds NOISE_LIMIT standard errors of the difference of the
means, sqrt(sd_baseline²/n_baseline + sd_variant²/n_variant) with sample standard deviations; the
seeded study (`cyclegan study`), the bf16 parity study and the reference-parity summary all judge
by this one rule.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

NOISE_LIMIT = 2.0  # standard errors a difference must exceed to count


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of one quantity over seeds (sd is nan for one seed)."""
    mean: float
    sd: float
    n: int


def spread(values: Sequence[float]) -> Spread:
    values = [float(value) for value in values]
    if not values:
        raise ValueError("spread of no values")
    return Spread(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan, len(values))


@dataclass(frozen=True)
class Difference:
    """A variant against the baseline: difference of the means and that difference in standard errors."""
    baseline: Spread
    variant: Spread
    difference: float       # variant mean − baseline mean
    standard_error: float   # sqrt(sd_baseline²/n_baseline + sd_variant²/n_variant); nan with one seed on a side
    standard_errors: float  # difference / standard_error (±inf for a difference without spread)

    def verdict(self, higher_is_better: bool | None = None) -> str:
        """'better' / 'worse' (or 'higher' / 'lower' where no direction is better) beyond
        NOISE_LIMIT standard errors, else 'within noise'; 'too few seeds' without a spread."""
        z = self.standard_errors
        if math.isnan(z):
            return "too few seeds"
        if abs(z) <= NOISE_LIMIT:
            return "within noise"
        if higher_is_better is None:
            return "higher" if z > 0 else "lower"
        return "better" if (z > 0) == higher_is_better else "worse"


def difference(baseline: Sequence[float], variant: Sequence[float]) -> Difference:
    a, b = spread(baseline), spread(variant)
    delta = b.mean - a.mean
    standard_error = math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n)
    if math.isnan(standard_error):
        z = math.nan
    elif standard_error > 0:
        z = delta / standard_error
    else:
        z = 0.0 if delta == 0 else math.copysign(math.inf, delta)
    return Difference(a, b, delta, standard_error, z)
