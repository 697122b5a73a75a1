"""Evaluation protocols, every score with its 95 % interval (paper 3.2-3.3, and what we add to it).

The paper scores a frozen encoder by a linear probe on a dataset's test split (:mod:`s3t.probe`).
Three protocols use that probe here, each scoring every row (S3T, Random-Init, Supervised,
hand-crafted) the same way:

- **test split** (:func:`score_test_split`): the paper's; train on the train split (or a label fraction
  of it), select on valid, score test once.
- **cross-validation** (:func:`cross_validate`): for choosing between settings without reading the
  test split. The train and valid clips are cut into folds by group (:func:`group_folds`: a track's
  clips never straddle two folds, each fold holds groups of every class), and each fold is scored
  once by the probe trained on the others, the next fold selecting the probe's setting and k. A
  valid split of a few dozen clips scores a setting in steps of one clip; here every train and
  valid clip is scored.
- **transfer** (the pipeline's `transfer` stage): the same cross-validation on music the encoder
  never heard, labelled by where it comes from (for the soundtracks: Debian packages kept out of
  pre-training). It asks what held-out recordings ask: does what pre-training learned carry over?

Intervals (:mod:`s3t.bootstrap`): each score (top-1, or ROC-AUC and PR-AUC for tagging) carries
a 95 % percentile interval from a bootstrap that resamples whole groups (tracks), and each
comparison a target reads (:data:`COMPARISONS`) the interval of the paired difference. Choices:
- The Supervised row is left out of cross-validation over a dataset's own train + valid split: its
  encoder was trained end-to-end on the train split's labels, so the folds would score clips whose
  labels it learned. On the transfer task (other music, other labels) it is scored like the rest.
- A difference's interval pairs the methods by row: the same resampled tracks for both.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from s3t.bootstrap import LEVEL, N_RESAMPLES, Interval, mean_interval, metric_interval
from s3t.metrics import tagging_metrics, top_k_hits
from s3t.probe import ProbeConfig, SplitFit, fit_splits

COMPARISONS = (("s3t", "random_init"), ("s3t", "handcrafted"))
"""(a, b) pairs whose difference a - b carries a paired interval: what the targets read."""


@dataclass(frozen=True)
class Scored:
    """One method's outputs on the scored rows: scores (N, C) (class or tag probabilities) and
    targets (N,) class indices or (N, C) multi-hot."""

    scores: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        if self.scores.ndim != 2 or self.scores.shape[0] != self.targets.shape[0]:
            raise ValueError(f"scores must be (N, C) with N targets, got {self.scores.shape} and {self.targets.shape}")

    @property
    def multilabel(self) -> bool:
        return self.targets.ndim == 2


def _tagging(scored: Scored, name: str):
    def metric(rows: np.ndarray) -> float:
        try:
            return tagging_metrics(scored.scores[rows], scored.targets[rows])[name]
        except ValueError:  # no tag with both classes among the drawn rows
            return float("nan")
    return metric


def summarize(scored: Scored, groups: Sequence[str], *, n_resamples: int = N_RESAMPLES, seed: int = 0,
              level: float = LEVEL) -> dict[str, float]:
    """The scores of one method with their intervals, flat: {top1, top1_low, top1_high} (and top5
    where there are more than 5 classes), or {roc_auc, pr_auc} and their bounds for tagging.
    Fractions in [0, 1]. ``groups`` (N,): each row's track."""
    if scored.multilabel:
        out: dict[str, float] = {}
        for name in ("roc_auc", "pr_auc"):
            interval, _ = metric_interval(_tagging(scored, name), groups, n_resamples=n_resamples, seed=seed, level=level)
            out.update(interval.as_dict(name))
        return out
    out = mean_interval(top_k_hits(scored.scores, scored.targets, 1), groups, n_resamples=n_resamples, seed=seed,
                        level=level).as_dict("top1")
    if scored.scores.shape[1] > 5:  # top-5 of five or fewer classes is always 1
        out.update(mean_interval(top_k_hits(scored.scores, scored.targets, 5), groups, n_resamples=n_resamples,
                                 seed=seed, level=level).as_dict("top5"))
    return out


def difference(a: Scored, b: Scored, groups: Sequence[str], *, n_resamples: int = N_RESAMPLES, seed: int = 0,
               level: float = LEVEL) -> dict[str, float]:
    """a minus b on the same rows with the paired interval: {top1, top1_low, top1_high} or, for
    tagging, the same for roc_auc and pr_auc."""
    if not np.array_equal(a.targets, b.targets):
        raise ValueError("a paired difference needs both methods scored on the same rows and targets")
    if a.multilabel:
        out: dict[str, float] = {}
        for name in ("roc_auc", "pr_auc"):
            fa, fb = _tagging(a, name), _tagging(b, name)
            interval, _ = metric_interval(lambda rows: fa(rows) - fb(rows), groups, n_resamples=n_resamples,
                                          seed=seed, level=level)
            out.update(interval.as_dict(name))
        return out
    hits = top_k_hits(a.scores, a.targets, 1).astype(float) - top_k_hits(b.scores, b.targets, 1).astype(float)
    return mean_interval(hits, groups, n_resamples=n_resamples, seed=seed, level=level).as_dict("top1")


def comparisons(scored: dict[str, Scored], groups: Sequence[str], *, knn: dict[str, Scored | None] | None = None,
                n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, dict[str, float]]:
    """{"s3t_minus_random_init": ..., "s3t_minus_handcrafted": ...} (:data:`COMPARISONS` whose
    both methods are in ``scored``), each a :func:`difference`; with ``knn`` (the same methods' k-NN
    scores) also "knn_s3t_minus_random_init" and so on."""
    out = {f"{a}_minus_{b}": difference(scored[a], scored[b], groups, n_resamples=n_resamples, seed=seed)
           for a, b in COMPARISONS if a in scored and b in scored}
    if knn and all(v is not None for v in knn.values()):
        out.update({f"knn_{k}": v for k, v in comparisons(knn, groups, n_resamples=n_resamples, seed=seed).items()})
    return out


# ----------------------------------------------------------------------------- the test split


def score_test_split(x: torch.Tensor, label_rows: Sequence[Sequence[str]], splits: Sequence[str],
                     groups: Sequence[str], labels: Sequence[str], multilabel: bool, *, n_resamples: int = N_RESAMPLES,
                     **probe_kwargs) -> tuple[SplitFit, dict, Scored, Scored | None]:
    """The paper's protocol (:func:`s3t.probe.fit_splits`, ``probe_kwargs`` passed on) with
    intervals: the fit, its result with each test score's bounds added (the probe's, and under
    "knn" the k-NN's), and the test rows' :class:`Scored` of the probe and of k-NN (None without
    it), for :func:`comparisons`. ``groups`` (N,): every row's track."""
    if len(groups) != len(splits):
        raise ValueError(f"{len(splits)} rows but {len(groups)} groups")
    fit = fit_splits(x, label_rows, splits, labels, multilabel, **probe_kwargs)
    test_groups = [g for g, s in zip(groups, splits) if s == "test"]
    seed = probe_kwargs["config"].seed if "config" in probe_kwargs else 0
    linear = Scored(fit.test_scores, fit.test_targets)
    result = {**fit.result, **summarize(linear, test_groups, n_resamples=n_resamples, seed=seed),
              "n_test_groups": len(set(test_groups))}
    knn = None
    if fit.knn_scores is not None:
        knn = Scored(fit.knn_scores, fit.test_targets)
        result["knn"]["test"] = summarize(knn, test_groups, n_resamples=n_resamples, seed=seed)
    return fit, result, linear, knn


def rows_on_test_split(embeddings: dict[str, torch.Tensor], label_rows: Sequence[Sequence[str]],
                       splits: Sequence[str], groups: Sequence[str], labels: Sequence[str], multilabel: bool, *,
                       n_resamples: int = N_RESAMPLES, **probe_kwargs) -> dict:
    """:func:`score_test_split` of every method's embeddings (name -> (N, D)) on the same splits, in the
    layout of :func:`cross_validated_rows`: {"n", "n_groups", "resamples", <method>: {scores and bounds,
    "knn": {...}}, "s3t_minus_random_init": ..., ...}, n counting the test rows."""
    test_groups = [g for g, s in zip(groups, splits) if s == "test"]
    seed = probe_kwargs["config"].seed if "config" in probe_kwargs else 0
    result: dict = {"n": len(test_groups), "n_groups": len(set(test_groups)), "resamples": n_resamples}
    linear, knn = {}, {}
    for method, x in embeddings.items():
        _, scores, linear[method], knn[method] = score_test_split(x, label_rows, splits, groups, labels, multilabel,
                                                                  n_resamples=n_resamples, knn=True, **probe_kwargs)
        keep = {k: v for k, v in scores.items() if isinstance(v, float) or k == "selection"}
        result[method] = {**keep, "knn": {"k": scores["knn"]["k"], **scores["knn"]["test"]}}
    result.update(comparisons(linear, test_groups, knn=knn, n_resamples=n_resamples, seed=seed))
    return result


# ----------------------------------------------------------------------------- cross-validation


def group_folds(groups: Sequence[str], labels: Sequence[str], folds: int) -> list[int]:
    """Each row's fold in [0, folds): per label, its groups in sha256 order dealt round robin, so
    a group's rows share a fold and every fold holds groups of every label that has ``folds`` groups.
    ``groups[i]`` and ``labels[i]`` are row i's group (e.g. its track) and its (first) label."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    label_of: dict[str, str] = {}
    by_label: dict[str, set[str]] = defaultdict(set)
    for group, label in zip(groups, labels):
        if label_of.setdefault(group, label) != label:
            raise ValueError(f"group {group!r} has rows of several labels ({label_of[group]!r}, {label!r}); "
                             "give each group one label")
        by_label[label].add(group)
    fold_of = {
        group: i % folds
        for label in sorted(by_label)
        for i, group in enumerate(sorted(by_label[label], key=lambda g: hashlib.sha256(g.encode()).hexdigest()))
    }
    return [fold_of[g] for g in groups]


def cross_validate(
    x: torch.Tensor,
    label_rows: Sequence[Sequence[str]],
    folds: Sequence[int],
    labels: Sequence[str],
    *,
    config: ProbeConfig = ProbeConfig(),
    grid: Sequence[tuple[float, float]] | None = None,
    l2: Sequence[float] | None = None,
) -> tuple[Scored, Scored]:
    """The linear probe's and k-NN's scores of every row of ``x`` (N, D), single-label, each row
    scored once, in the rotation whose test fold holds it (:func:`s3t.probe.fit_splits`, the next
    fold as valid, the rest as train). ``folds`` from :func:`group_folds`. Rows in ``x``'s order."""
    n_folds = max(folds) + 1
    if n_folds < 3:
        raise ValueError(f"cross-validation needs at least 3 folds (train, valid, test), got {n_folds}")
    n, n_classes = len(folds), len(labels)
    linear, knn = np.zeros((n, n_classes)), np.zeros((n, n_classes))
    targets = np.zeros(n, dtype=np.int64)
    for test in range(n_folds):
        valid = (test + 1) % n_folds
        splits = ["test" if f == test else "valid" if f == valid else "train" for f in folds]
        fit = fit_splits(x, label_rows, splits, labels, False, config=config, grid=grid, l2=l2, knn=True)
        rows = np.array([i for i, s in enumerate(splits) if s == "test"])
        linear[rows], knn[rows], targets[rows] = fit.test_scores, fit.knn_scores, fit.test_targets
    return Scored(linear, targets), Scored(knn, targets)


def cross_validated_rows(embeddings: dict[str, torch.Tensor], label_rows: Sequence[Sequence[str]],
                         groups: Sequence[str], labels: Sequence[str], *, folds: int = 5,
                         n_resamples: int = N_RESAMPLES, config: ProbeConfig = ProbeConfig(),
                         grid: Sequence[tuple[float, float]] | None = None,
                         l2: Sequence[float] | None = None) -> dict:
    """Cross-validate every method's embeddings (name -> (N, D)) on the same folds by group, with
    intervals: {"n", "n_groups", "folds", "resamples", <method>: {top1 and bounds, "knn": {...}},
    "s3t_minus_random_init": ..., "s3t_minus_handcrafted": ..., and "knn_" versions of those}."""
    fold_of = group_folds(groups, [row[0] for row in label_rows], folds)
    result: dict = {"n": len(groups), "n_groups": len(set(groups)), "folds": folds, "resamples": n_resamples}
    linear, knn = {}, {}
    for method, x in embeddings.items():
        linear[method], knn[method] = cross_validate(x, label_rows, fold_of, labels, config=config, grid=grid, l2=l2)
        result[method] = {**summarize(linear[method], groups, n_resamples=n_resamples, seed=config.seed),
                          "knn": summarize(knn[method], groups, n_resamples=n_resamples, seed=config.seed)}
    result.update(comparisons(linear, groups, knn=knn, n_resamples=n_resamples, seed=config.seed))
    return result


SUMMARY_ROWS = (("s3t", "S3T"), ("random_init", "RI"), ("supervised", "Sup"), ("handcrafted", "HC"))
SUMMARY_DIFFERENCES = (("s3t_minus_random_init", "ΔRI"), ("s3t_minus_handcrafted", "ΔHC"))
"""ΔRI is S3T minus Random-Init, ΔHC S3T minus hand-crafted: one character, so that a row of `dvc metrics show`
fits in 120 columns."""


def summary(result: dict[str, Any]) -> dict[str, float]:
    """The headline of an evaluation result (a probe, folds or transfer JSON), for `dvc metrics show` and
    `dvc metrics diff`: each row's score (top-1, or PR-AUC for tagging) and each paired difference with the ends
    of its 95 % interval, in points, under short keys (the metrics table has a column per key). The full result,
    with selection grids, counts and k-NN, stays in its own file."""
    metric = "top1" if "top1" in result.get("s3t", {}) else "pr_auc"
    out: dict[str, float] = {}
    for key, name in SUMMARY_ROWS:
        if isinstance(result.get(key), dict) and metric in result[key]:
            out[name] = round(100 * result[key][metric], 1)
    for key, name in SUMMARY_DIFFERENCES:
        row = result.get(key)
        if isinstance(row, dict) and metric in row:
            out[name] = round(100 * row[metric], 1)
            out[f"{name} lo"] = round(100 * row[f"{metric}_low"], 1)
            out[f"{name} hi"] = round(100 * row[f"{metric}_high"], 1)
    return out
