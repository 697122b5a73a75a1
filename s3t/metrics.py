"""Evaluation metrics of the paper's linear protocol (paper 3.3).

Genre classification reports top-1 and top-5 accuracy; music tagging reports the
tag-wise average of ROC-AUC and of PR-AUC. The paper says "average precision (PR-AUC)",
so PR-AUC here is average precision (the step-wise area, as in scikit-learn's
``average_precision_score``), not the trapezoidal area under the PR curve. Tags with no
positive or no negative example in the evaluated split have no defined AUC and are
left out of the macro average; :func:`tagging_metrics` reports how many were used.

Written with numpy and scipy only, so the core library needs no scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def top_k_hits(scores: np.ndarray, targets: np.ndarray, k: int = 1) -> np.ndarray:
    """Whether each row's target is among its ``k`` highest scores, (N,) bool.

    scores: (N, C) float; targets: (N,) int class indices.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and targets (N,), got {scores.shape} and {targets.shape}")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k]
    return np.any(top == targets[:, None], axis=1)


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose target is among the ``k`` highest scores (:func:`top_k_hits`)."""
    return float(np.mean(top_k_hits(scores, targets, k)))


def roc_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the ROC curve of one binary task (Mann-Whitney U with tied ranks averaged).

    scores: (N,) float; targets: (N,) {0, 1}. NaN when one class is absent.
    """
    targets = np.asarray(targets).astype(bool)
    n_pos = int(targets.sum())
    n_neg = targets.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[targets].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one binary task: sum over thresholds of (R_n - R_{n-1}) * P_n.

    Tied scores form one threshold. scores: (N,) float; targets: (N,) {0, 1}. NaN without positives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets).astype(bool)
    n_pos = int(targets.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], targets[order]
    # Last index of each run of equal scores is where a threshold cuts.
    cut = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(t)[cut]
    precision = tp / (cut + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def tagging_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Macro ROC-AUC and PR-AUC over tags. scores, targets: (N, C)."""
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores and targets must both be (N, C), got {scores.shape} and {targets.shape}")
    aucs = np.array([roc_auc(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])
    aps = np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])
    valid = ~np.isnan(aucs)
    if not valid.any():
        raise ValueError("no tag has both positive and negative examples; ROC-AUC is undefined")
    return {
        "roc_auc": float(aucs[valid].mean()),
        "pr_auc": float(aps[valid].mean()),
        "tags_evaluated": int(valid.sum()),
    }


def per_tag_roc_auc(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """ROC-AUC of every tag (C,), NaN where undefined; for per-tag plots."""
    return np.array([roc_auc(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])


def confusion_matrix(predictions: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets), np.asarray(predictions)), 1)
    return matrix
