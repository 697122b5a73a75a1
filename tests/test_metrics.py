import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from s3t.metrics import average_precision, confusion_matrix, roc_auc, tagging_metrics, top_k_accuracy


def test_roc_auc_and_average_precision_match_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 60)
        s = rng.integers(0, 8, 60) / 8.0  # many ties
        assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s))
        assert average_precision(s, y) == pytest.approx(average_precision_score(y, s))


def test_tagging_metrics_macro_average_skips_undefined_tags():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (50, 4))
    y[:, 3] = 0  # a tag with no positive example
    s = rng.random((50, 4))
    m = tagging_metrics(s, y)
    assert m["tags_evaluated"] == 3
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y[:, :3], s[:, :3], average="macro"))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y[:, :3], s[:, :3], average="macro"))


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    targets = np.array([1, 1, 0])
    assert top_k_accuracy(scores, targets, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, targets, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, targets, 5) == 1.0


def test_confusion_matrix_counts():
    m = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
