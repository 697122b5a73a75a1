import numpy as np
import pytest
import torch

from s3t.bootstrap import format_interval
from s3t.evaluation import (Scored, comparisons, cross_validate, cross_validated_rows, difference, group_folds,
                            score_test_split, summarize)
from s3t.probe import ProbeConfig


def _blobs(n_per_class: int, classes: int, dim: int, seed: int, spread: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[y] + spread * torch.randn(len(y), dim, generator=g), y


def test_group_folds_keep_groups_whole_and_spread_every_label():
    groups = [f"{label}-track{t}" for label in "ab" for t in range(6) for _ in range(2)]  # 2 clips per track
    labels = [g[0] for g in groups]
    folds = group_folds(groups, labels, 3)
    assert group_folds(groups, labels, 3) == folds  # fixed, no RNG
    for g in set(groups):
        assert len({f for f, h in zip(folds, groups) if h == g}) == 1
    for label in "ab":
        assert sorted(f for f, lab in zip(folds, labels) if lab == label) == [0] * 4 + [1] * 4 + [2] * 4
    with pytest.raises(ValueError, match="several labels"):
        group_folds(["t", "t"], ["a", "b"], 2)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        group_folds(groups, labels, 1)


def test_cross_validation_scores_every_row_once_by_the_probe_protocol():
    x, y = _blobs(12, 3, 8, 0)
    label_rows = [(str(int(c)),) for c in y]
    groups = [f"{c}-{i // 2}" for i, c in enumerate(y.tolist())]  # pairs of rows share a group
    folds = group_folds(groups, [r[0] for r in label_rows], 4)
    linear, knn = cross_validate(x, label_rows, folds, ["0", "1", "2"], l2=[1.0, 0.01])
    assert linear.scores.shape == (36, 3) and (linear.targets == y.numpy()).all()  # rows in x's order
    assert (linear.scores.argmax(1) == y.numpy()).all() and (knn.scores.argmax(1) == y.numpy()).all()  # clear blobs
    shuffled = [(str(int(c)),) for c in y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]]
    chance, _ = cross_validate(x, shuffled, folds, ["0", "1", "2"], l2=[1.0, 0.01])
    assert (chance.scores.argmax(1) == chance.targets).mean() < 0.7  # labels the features do not hold are not learned
    with pytest.raises(ValueError, match="at least 3 folds"):
        cross_validate(x, label_rows, [i % 2 for i in range(36)], ["0", "1", "2"])


def test_summary_has_intervals_and_top5_only_where_it_can_differ_from_one():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, size=60)
    scores = rng.random((60, 5))
    scores[np.arange(40), targets[:40]] += 2  # 40 of 60 right
    scores[np.arange(40, 60), targets[40:]] -= 2
    groups = [f"t{i // 3}" for i in range(60)]
    out = summarize(Scored(scores, targets), groups)
    assert set(out) == {"top1", "top1_low", "top1_high"}
    assert out["top1"] == pytest.approx(40 / 60) and out["top1_low"] < out["top1"] < out["top1_high"]
    wide = summarize(Scored(np.c_[scores, rng.random((60, 3))], targets), groups)
    assert {"top5", "top5_low", "top5_high"} <= set(wide)


def test_paired_difference_cancels_what_two_methods_share():
    rng = np.random.default_rng(1)
    n = 90
    targets = rng.integers(0, 3, size=n)
    groups = [f"t{i // 3}" for i in range(n)]
    hard = np.repeat(rng.random(n // 3) < 0.5, 3)  # tracks both methods get wrong
    base = np.eye(3)[targets] + 0.01 * rng.random((n, 3))
    base[hard] = np.roll(base[hard], 1, axis=1)
    better = base.copy()
    flip = hard & np.repeat(rng.random(n // 3) < 0.2, 3)  # a few hard tracks the better method gets right
    better[flip] = np.eye(3)[targets[flip]]
    a, b = Scored(better, targets), Scored(base, targets)
    diff = difference(a, b, groups, n_resamples=500)
    assert diff["top1"] == pytest.approx(flip.mean())
    assert 0 <= diff["top1_low"] < diff["top1_high"]
    # The paired interval is narrower than even one method's own (an unpaired one would be ~1.4x that).
    width = summarize(a, groups)["top1_high"] - summarize(a, groups)["top1_low"]
    assert diff["top1_high"] - diff["top1_low"] < 0.8 * width
    assert set(comparisons({"s3t": a, "random_init": b, "handcrafted": b}, groups)) == {
        "s3t_minus_random_init", "s3t_minus_handcrafted"}
    with pytest.raises(ValueError, match="same rows"):
        difference(a, Scored(base, (targets + 1) % 3), groups)


def test_tagging_scores_carry_auc_intervals():
    rng = np.random.default_rng(2)
    targets = (rng.random((80, 4)) < 0.3).astype(float)
    scores = targets * 0.6 + rng.random((80, 4)) * 0.7
    groups = [f"t{i // 2}" for i in range(80)]
    out = summarize(Scored(scores, targets), groups, n_resamples=200)
    for name in ("roc_auc", "pr_auc"):
        assert out[f"{name}_low"] <= out[name] <= out[f"{name}_high"]
    same = difference(Scored(scores, targets), Scored(scores, targets), groups, n_resamples=50)
    assert same["pr_auc"] == same["pr_auc_low"] == same["pr_auc_high"] == 0.0


def test_test_split_adds_intervals_to_the_probe_and_knn_scores():
    x, y = _blobs(20, 3, 8, 0, spread=3.0)
    splits = (["train"] * 10 + ["valid"] * 5 + ["test"] * 5) * 3
    groups = [f"{int(c)}-{i // 5}" for i, c in enumerate(y.tolist())]
    rows = [(str(int(c)),) for c in y]
    fit, result, linear, knn = score_test_split(x, rows, splits, groups, ["0", "1", "2"], False, l2=[1.0, 0.1], knn=True,
                                          config=ProbeConfig(seed=0))
    assert result["top1"] == fit.result["top1"] and result["n_test"] == 15 and result["n_test_groups"] == 3
    assert result["top1_low"] <= result["top1"] <= result["top1_high"]
    assert result["knn"]["test"]["top1_low"] <= result["knn"]["test"]["top1"] <= result["knn"]["test"]["top1_high"]
    assert "top5" not in result and linear.scores.shape == knn.scores.shape == (15, 3)
    with pytest.raises(ValueError, match="groups"):
        score_test_split(x, rows, splits, groups[:-1], ["0", "1", "2"], False)


def test_cross_validated_rows_score_each_method_on_the_same_folds():
    x, y = _blobs(15, 3, 8, 0, spread=2.0)
    rows = [(str(int(c)),) for c in y]
    groups = [f"{int(c)}-{i // 3}" for i, c in enumerate(y.tolist())]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    out = cross_validated_rows({"s3t": x, "random_init": noise, "handcrafted": x + 0.1 * noise}, rows, groups,
                               ["0", "1", "2"], folds=5, n_resamples=200, l2=[1.0, 0.1])
    assert out["n"] == 45 and out["n_groups"] == 15 and out["folds"] == 5
    assert out["s3t"]["top1"] > out["random_init"]["top1"]
    assert out["s3t_minus_random_init"]["top1"] == pytest.approx(out["s3t"]["top1"] - out["random_init"]["top1"])
    assert out["s3t_minus_random_init"]["top1_low"] > 0  # blobs against noise: a margin the interval resolves
    assert "knn_s3t_minus_handcrafted" in out and "knn" in out["s3t"]


def test_format_interval():
    assert format_interval(0.5964, 0.456, 0.7234) == "59.6 [46, 72]"
    assert format_interval(-0.0351, -0.2, 0.1, signed=True) == "-3.5 [-20, 10]"
    assert format_interval(0.05, float("nan"), float("nan"), signed=True) == "+5.0"
    assert format_interval(float("nan"), 0, 1) == "n/a"


def test_summary_is_the_headline_in_points_under_short_keys():
    from s3t.evaluation import summary

    result = {"s3t": {"top1": 0.285, "top1_low": 0.2, "top1_high": 0.37, "knn": {}}, "random_init": {"top1": 0.316},
              "handcrafted": {"top1": 0.378}, "n": 193,
              "s3t_minus_random_init": {"top1": -0.031, "top1_low": -0.104, "top1_high": 0.03},
              "s3t_minus_handcrafted": {"top1": -0.093, "top1_low": -0.19, "top1_high": 0.0}}
    assert summary(result) == {"S3T": 28.5, "RI": 31.6, "HC": 37.8, "ΔRI": -3.1, "ΔRI lo": -10.4,
                               "ΔRI hi": 3.0, "ΔHC": -9.3, "ΔHC lo": -19.0, "ΔHC hi": 0.0}
