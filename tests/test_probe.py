import pytest
import torch

from s3t.probe import LinearProbe, ProbeConfig, encode_targets, evaluate, label_fraction, train_probe


def _blobs(n_per_class: int, classes: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[y] + torch.randn(len(y), dim, generator=g), y


def test_probe_separates_clear_classes_and_keeps_best_valid_epoch():
    x, y = _blobs(30, 4, 16, 0)
    xv, yv = _blobs(10, 4, 16, 0)
    probe, history = train_probe(x, y, xv, yv, list("abcd"), False, ProbeConfig(epochs=20, batch_size=16))
    assert len(history) == 20
    assert evaluate(probe, xv, yv)["top1"] == max(h["top1"] for h in history)
    assert evaluate(probe, xv, yv)["top1"] > 0.9


def test_multilabel_probe_reports_auc():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    y = (x[:, :3] > 0).float()  # each tag is readable from one feature
    probe, _ = train_probe(x[:150], y[:150], x[150:], y[150:], ["t0", "t1", "t2"], True, ProbeConfig(epochs=30, batch_size=32, lr=0.1))
    m = evaluate(probe, x[150:], y[150:])
    assert set(m) >= {"roc_auc", "pr_auc"} and m["roc_auc"] > 0.95


def test_label_fraction_is_stratified_and_seeded():
    y = torch.arange(5).repeat_interleave(40)
    idx = label_fraction(y, 0.1, seed=3)
    assert torch.bincount(y[idx]).tolist() == [4] * 5
    assert torch.equal(idx, label_fraction(y, 0.1, seed=3))
    assert not torch.equal(idx, label_fraction(y, 0.1, seed=4))
    # 1 % of a small class still keeps one example of every class.
    assert torch.bincount(y[label_fraction(y, 0.01)]).tolist() == [1] * 5
    assert torch.equal(label_fraction(y, 1.0), torch.arange(200))


def test_label_fraction_multilabel_covers_every_tag():
    y = torch.zeros(300, 6)
    y[:, 0] = 1
    y[7, 5] = 1  # a rare tag with one positive row
    idx = label_fraction(y, 0.05, seed=0)
    assert torch.equal(y[idx].sum(0) > 0, y.sum(0) > 0)
    assert idx.numel() <= 15 + 6


def test_encode_targets_and_errors():
    assert encode_targets([["b"], ["a"]], ["a", "b"], False).tolist() == [1, 0]
    assert encode_targets([["a", "c"], []], ["a", "b", "c"], True).tolist() == [[1, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="not in the probe's label set"):
        encode_targets([["z"]], ["a"], False)
    with pytest.raises(ValueError, match="exactly one label"):
        encode_targets([["a", "b"]], ["a", "b"], False)
    with pytest.raises(ValueError):
        label_fraction(torch.zeros(3, dtype=torch.long), 0.0)
    with pytest.raises(ValueError):
        ProbeConfig(warmup_epochs=60)


def test_probe_state_round_trip():
    probe = LinearProbe(4, ["x", "y"], multilabel=False)
    back = LinearProbe.from_state(probe.to_state())
    x = torch.randn(3, 4)
    assert torch.equal(back(x), probe(x)) and back.labels == ["x", "y"]
