import numpy as np
import pytest

from s3t.bootstrap import Interval, group_counts, mean_interval, metric_interval


def _clustered(rng: np.random.Generator, groups: int, per_group: int, mu: float) -> tuple[np.ndarray, list[str]]:
    """Values with a group effect and a row effect of equal variance: rows of a group are correlated
    (intra-class correlation 0.5), so the mean's variance is (1 + 1 / per_group) / groups."""
    effect = rng.normal(size=groups).repeat(per_group)
    values = mu + effect + rng.normal(size=groups * per_group)
    return values, [f"track{g}" for g in range(groups) for _ in range(per_group)]


def test_group_bootstrap_covers_the_true_mean_at_about_the_nominal_rate_and_rows_alone_do_not():
    rng, mu, trials = np.random.default_rng(0), 0.5, 300
    grouped = naive = 0
    for trial in range(trials):
        values, groups = _clustered(rng, 40, 3, mu)
        a = mean_interval(values, groups, n_resamples=400, seed=trial)
        b = mean_interval(values, [str(i) for i in range(len(values))], n_resamples=400, seed=trial)
        grouped += a.low <= mu <= a.high
        naive += b.low <= mu <= b.high
    # Nominal 95 %: 300 trials put the rate within about +-2.6 points (one s.e.); the percentile
    # bootstrap of 40 groups runs a little narrow.
    assert 0.89 <= grouped / trials <= 0.99
    # Resampling clips as if independent ignores the shared track effect: its interval is about
    # sqrt(0.5) as wide here and misses far more often.
    assert naive / trials < grouped / trials - 0.05


def test_rows_of_one_group_are_drawn_together_and_each_resample_draws_as_many_groups_as_there_are():
    groups = ["a", "a", "b", "c", "c", "c", "d"]
    counts = group_counts(groups, n_resamples=200, seed=3)
    assert counts.shape == (200, 7)
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 3] == counts[:, 4]).all() and (counts[:, 4] == counts[:, 5]).all()
    first_of_group = counts[:, [0, 2, 3, 6]]
    assert (first_of_group.sum(1) == 4).all()  # 4 groups drawn with replacement
    assert (counts == group_counts(groups, n_resamples=200, seed=3)).all()  # seeded
    assert (counts != group_counts(groups, n_resamples=200, seed=4)).any()
    with pytest.raises(ValueError, match="no rows"):
        group_counts([], 10)
    with pytest.raises(ValueError, match="n_resamples"):
        group_counts(groups, 0)


def test_mean_interval_brackets_the_value_and_collapses_without_spread():
    values = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    interval = mean_interval(values, list("aabbcc"), n_resamples=500)
    assert interval.value == pytest.approx(4 / 6)
    assert interval.low <= interval.value <= interval.high
    assert interval.low < interval.high
    assert mean_interval(np.ones(6), list("abcdef")) == Interval(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="one group per row"):
        mean_interval(values, list("abc"))


def test_metric_interval_drops_undefined_resamples_and_reports_how_many_were_kept():
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0])

    def positives_share(rows: np.ndarray) -> float:
        # Undefined (NaN) on a resample without the one positive row.
        return float(labels[rows].mean()) if labels[rows].any() else float("nan")

    interval, kept = metric_interval(positives_share, [str(i) for i in range(8)], n_resamples=300, seed=0)
    assert interval.value == pytest.approx(1 / 8)
    assert 0 < kept < 300  # (7/8)^8 of resamples miss the positive: about 34 %
    assert abs(kept / 300 - (1 - (7 / 8) ** 8)) < 0.08
    assert 0 < interval.low <= interval.high
    assert interval.as_dict("share") == {"share": interval.value, "share_low": interval.low, "share_high": interval.high}
