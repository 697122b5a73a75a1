"""Confidence intervals for probe scores: a bootstrap that resamples whole groups (tracks).

The paper (3.3) reports point estimates only. Our test splits are small (the soundtracks' is 57
clips: one clip moves top-1 by 1.8 points), so every score here carries a 95 % interval, and every
comparison a target reads (S3T minus Random-Init, S3T minus hand-crafted) carries the interval of
the paired difference.

Choices:
- Clips cut from one track are not independent (they share the composer, the mix, the
  instruments), so the unit that is resampled is the group (a track), not the clip: a resample
  draws as many groups as there are, with replacement, and takes every clip of each drawn group.
  Without groups (every clip its own track) it is the ordinary bootstrap.
- Percentile intervals (the 2.5th and 97.5th percentiles of the resampled statistic) from
  ``n_resamples`` draws with a fixed seed: the same scores give the same interval.
- A paired difference applies the same resampled groups to both methods, so what two encoders
  share (the hard tracks) cancels out of the difference.
- Metrics that are not means of per-clip values (ROC-AUC, PR-AUC) are recomputed on each resample
  of rows; a resample where a metric is undefined (a tag without positives) is dropped from the
  percentiles, and the count kept is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile interval, in the metric's own unit (fractions for top-1)."""

    value: float
    low: float
    high: float

    def as_dict(self, name: str) -> dict[str, float]:
        """{name, name_low, name_high}: flat keys, so `dvc metrics show` lists each as a column."""
        return {name: self.value, f"{name}_low": self.low, f"{name}_high": self.high}


def group_counts(groups: Sequence[str], n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """How often each row is drawn in each resample, (n_resamples, N) int: each resample draws
    G groups (of the G distinct ones in ``groups``) with replacement, every row of a drawn group
    taking its group's count, so the rows of one group always move together."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if len(groups) == 0:
        raise ValueError("no rows to resample")
    _, group_of_row = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_groups = int(group_of_row.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_resamples)  # (B, G)
    return drawn[:, group_of_row]


def _percentiles(values: np.ndarray, value: float, level: float) -> Interval:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Interval(value, float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def mean_interval(values: np.ndarray, groups: Sequence[str], *, n_resamples: int = N_RESAMPLES,
                  level: float = LEVEL, seed: int = 0) -> Interval:
    """The mean of per-row ``values`` (N,) (e.g. 1.0 for a right top-1 answer, or the difference of two
    methods' right answers) and its group-bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.shape[0] != len(groups):
        raise ValueError(f"values must be (N,) with one group per row, got {values.shape} and {len(groups)} groups")
    counts = group_counts(groups, n_resamples, seed)
    # Every resample holds at least one group, so at least one row: the denominator is positive.
    resampled = counts @ values / counts.sum(1)
    return _percentiles(resampled, float(values.mean()), level)


def metric_interval(metric: Callable[[np.ndarray], float], groups: Sequence[str], *,
                    n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = 0) -> tuple[Interval, int]:
    """Any metric of a set of rows: ``metric(rows)`` takes row indices (with repeats) and returns a
    float (NaN where undefined). Returns the interval of the metric on all rows and the number of
    resamples on which it was defined."""
    n = len(groups)
    counts = group_counts(groups, n_resamples, seed)
    every = np.arange(n)
    values = np.array([metric(np.repeat(every, row)) for row in counts], dtype=np.float64)
    return _percentiles(values, float(metric(every)), level), int(np.isfinite(values).sum())


def format_interval(value: float, low: float, high: float, *, scale: float = 100.0, signed: bool = False) -> str:
    """"59.6 [46, 72]": the value to one decimal and its bounds to whole units, in percent by default;
    ``signed`` writes a + before positive values (differences). NaN bounds (no interval) leave the
    value alone; a NaN value is "n/a"."""
    if value != value:
        return "n/a"
    text = f"{scale * value:+.1f}" if signed else f"{scale * value:.1f}"
    if low != low or high != high:
        return text
    return f"{text} [{scale * low:.0f}, {scale * high:.0f}]"
