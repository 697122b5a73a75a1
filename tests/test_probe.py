import pytest
import torch

from s3t.probe import (DEFAULT_GRID, LinearProbe, ProbeConfig, choose_threshold, encode_targets, evaluate, label_fraction,
                       lr_wd_grid, train_probe)


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


def _labeled_blobs(n_per_class: int = 20, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=g) * 3
    x = torch.cat([centres[c] + torch.randn(n_per_class, dim, generator=g) for c in range(3)])
    labels = [(str(c),) for c in range(3) for _ in range(n_per_class)]
    splits = (["train"] * 12 + ["valid"] * 4 + ["test"] * 4) * 3
    return x, labels, splits


def test_grid_protocol_keeps_the_best_setting_on_valid_and_records_the_grid():
    from s3t.probe import ProbeConfig, probe_splits

    x, labels, splits = _labeled_blobs()
    grid = [(1e-4, 0.0), (3e-2, 0.05)]
    _, result, _ = probe_splits(x, labels, splits, ["0", "1", "2"], False, config=ProbeConfig(epochs=5), grid=grid)
    assert [(row["lr"], row["weight_decay"]) for row in result["grid"]] == grid
    best = max(result["grid"], key=lambda row: row["valid"])
    assert (result["selection"]["lr"], result["selection"]["weight_decay"]) == (best["lr"], best["weight_decay"])
    assert result["valid"]["top1"] == best["valid"]
    _, paper, _ = probe_splits(x, labels, splits, ["0", "1", "2"], False, config=ProbeConfig(epochs=5))
    assert "selection" not in paper and "grid" not in paper


def test_knn_separates_blobs_and_chooses_k_on_valid():
    from s3t.probe import knn_evaluate, knn_scores

    x, labels, splits = _labeled_blobs()
    y = torch.tensor([int(row[0]) for row in labels])
    m = {s: torch.tensor([t == s for t in splits]) for s in ("train", "valid", "test")}
    result = knn_evaluate(x[m["train"]], y[m["train"]], x[m["valid"]], y[m["valid"]], x[m["test"]], y[m["test"]], 3)
    assert result["test"]["top1"] == 1.0 and result["k"] in (1, 3, 5, 10, 20)
    assert result["valid"] == max(row["valid"] for row in result["grid"])
    # Two neighbours, one vote each: the more similar one wins the tie.
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scores = knn_scores(train, torch.tensor([0, 1]), torch.tensor([[0.9, 0.5]]), k=2, n_classes=2)
    assert scores.argmax().item() == 0 and scores[0, 0] - scores[0, 1] < 0.01
    # Tagging: the mean of the neighbours' tag vectors.
    tags = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(knn_scores(train, tags, torch.tensor([[1.0, 1.0]]), k=2, n_classes=2), torch.tensor([[1.0, 0.5]]))


def test_choose_threshold_maximises_micro_f1_by_brute_force():
    g = torch.Generator().manual_seed(3)
    targets = (torch.rand(40, 5, generator=g) < 0.3).float()
    scores = (0.6 * targets + 0.7 * torch.rand(40, 5, generator=g)).clamp(0, 1)
    scores[0, 0] = scores[1, 1]  # a tie

    def micro_f1(t):
        predicted = scores >= t
        tp = (predicted & (targets == 1)).sum().item()
        return 2 * tp / (predicted.sum().item() + targets.sum().item())

    chosen = choose_threshold(scores, targets)
    assert chosen in scores.flatten().tolist()
    assert micro_f1(chosen) == pytest.approx(max(micro_f1(t) for t in scores.flatten().tolist()))
    assert choose_threshold(scores, torch.zeros(40, 5)) == 0.5


def test_multilabel_probe_splits_store_the_validation_threshold_in_the_probe():
    from s3t.probe import probe_splits

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    tags = ["t0", "t1", "t2"]
    rows = [tuple(t for t, on in zip(tags, r) if on) for r in (x[:, :3] > 0.5).tolist()]
    splits = ["train"] * 80 + ["valid"] * 20 + ["test"] * 20
    probe, result, _ = probe_splits(x, rows, splits, tags, True, config=ProbeConfig(epochs=20, lr=0.05))
    with torch.no_grad():
        expected = choose_threshold(probe.scores(x[80:100]), encode_targets(rows[80:100], tags, True))
    assert result["threshold"] == probe.threshold == expected and 0 < expected < 1
    back = LinearProbe.from_state(probe.to_state())
    assert back.threshold == probe.threshold and back.multilabel
    legacy = {k: v for k, v in probe.to_state().items() if k != "threshold"}  # a probe written before thresholds
    assert LinearProbe.from_state(legacy).threshold is None


def test_logistic_fit_reaches_the_penalised_optimum_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    from s3t.probe import train_logistic

    x, y = _blobs(20, 3, 6, 0)
    x = x + 2.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))  # overlapping classes
    l2 = 0.1
    probe, fit = train_logistic(x, y, ["a", "b", "c"], False, l2)
    assert fit["grad_max"] < 1e-5 and fit["iterations"] >= 1
    # The same objective in sklearn's terms: C = 1 / (n * l2) for a penalty on the summed loss.
    z = ((x - x.mean(0)) / x.std(0, unbiased=False)).double().numpy()
    reference = LogisticRegression(C=1 / (len(y) * l2), tol=1e-10, max_iter=10_000).fit(z, y.numpy())
    assert torch.allclose(probe.linear.weight.double(), torch.from_numpy(reference.coef_), atol=1e-3)
    # Standardisation lives in the probe's buffers, so raw embeddings go in.
    assert (probe(x).argmax(1).numpy() == reference.predict(z)).all()


def test_logistic_fit_is_stable_to_rounding_of_the_embeddings():
    from s3t.probe import train_logistic

    x, y = _blobs(15, 4, 40, 2)
    noisy = x * (1 + 1e-6 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3)))
    a, _ = train_logistic(x, y, list("abcd"), False, 1e-3)
    b, _ = train_logistic(noisy, y, list("abcd"), False, 1e-3)
    assert (a.linear.weight - b.linear.weight).abs().max() < 1e-3
    stronger, _ = train_logistic(x, y, list("abcd"), False, 1.0)
    assert stronger.linear.weight.norm() < a.linear.weight.norm()  # the penalty shrinks the weights


def test_logistic_fit_of_tags_and_its_errors():
    from s3t.probe import train_logistic

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 8, generator=g)
    y = (x[:, :3] > 0).float()
    probe, fit = train_logistic(x[:90], y[:90], ["t0", "t1", "t2"], True, 1e-3)
    assert probe.multilabel and fit["grad_max"] < 1e-5
    assert evaluate(probe, x[90:], y[90:])["roc_auc"] > 0.95
    with pytest.raises(ValueError, match="l2 must be > 0"):
        train_logistic(x, y, ["t0", "t1", "t2"], True, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        train_logistic(x[:0], y[:0], ["t0", "t1", "t2"], True, 1.0)


def test_logistic_protocol_chooses_the_strength_on_valid_and_records_it():
    from s3t.probe import L2_GRID, probe_splits, protocol_options

    x, labels, splits = _labeled_blobs()
    options = protocol_options("logistic")
    assert options == {"grid": None, "l2": L2_GRID}
    _, result, history = probe_splits(x, labels, splits, ["0", "1", "2"], False, knn=True, **options)
    assert [row["l2"] for row in result["grid"]] == list(L2_GRID) == [row["l2"] for row in history]
    best = max(result["grid"], key=lambda row: row["valid"])  # the first (strongest) among equals
    assert result["selection"] == {"l2": best["l2"]} and result["valid"]["top1"] == best["valid"]
    assert result["top1"] > 0.9 and "knn" in result
    with pytest.raises(ValueError, match="not both"):
        probe_splits(x, labels, splits, ["0", "1", "2"], False, grid=[(1e-3, 0.0)], l2=[1.0])
    with pytest.raises(ValueError, match="choose one of logistic, grid, paper"):
        protocol_options("sgd")
    with pytest.raises(ValueError, match="positive l2"):
        protocol_options("logistic", l2=[0.1, 0.0])
    assert protocol_options("paper") == {"grid": None, "l2": None}


def test_logistic_fit_with_fewer_rows_than_dimensions_is_the_full_problems_optimum():
    from sklearn.linear_model import LogisticRegression

    from s3t.probe import train_logistic

    x, y = _blobs(8, 3, 120, 4)  # 24 rows in 120 dimensions: fitted in the rows' 24-d span
    l2 = 0.05
    probe, fit = train_logistic(x, y, ["a", "b", "c"], False, l2)
    assert fit["grad_max"] < 1e-5
    z = ((x - x.mean(0)) / x.std(0, unbiased=False)).double().numpy()
    reference = LogisticRegression(C=1 / (len(y) * l2), tol=1e-10, max_iter=10_000).fit(z, y.numpy())
    assert torch.allclose(probe.linear.weight.double(), torch.from_numpy(reference.coef_), atol=1e-3)
    warm, again = train_logistic(x, y, ["a", "b", "c"], False, l2, init=probe)  # from the optimum: stays
    assert torch.allclose(warm.linear.weight, probe.linear.weight, atol=1e-5) and again["iterations"] <= 2


def test_lr_wd_grid_is_the_lr_major_product_and_holds_the_papers_setting():
    assert lr_wd_grid((1e-3, 1e-2), (0.0, 0.5, 5.0)) == (
        (1e-3, 0.0), (1e-3, 0.5), (1e-3, 5.0), (1e-2, 0.0), (1e-2, 0.5), (1e-2, 5.0))
    assert lr_wd_grid((), (0.1,)) == ()
    assert (1e-3, 0.05) in DEFAULT_GRID and len(DEFAULT_GRID) == 9


def test_novelty_is_about_one_in_twenty_for_held_out_rows_like_the_training_data_and_high_for_other_music():
    from s3t.probe import NOVELTY_ROWS, novelty, set_novelty_reference

    g = torch.Generator().manual_seed(0)
    train, valid, test = (torch.randn(n, 16, generator=g) for n in (400, 200, 2000))
    probe = LinearProbe(16, ["a", "b"], multilabel=False)
    probe.mean.copy_(train.mean(0))
    probe.std.copy_(train.std(0))
    set_novelty_reference(probe, train, valid)
    assert probe.reference.shape == (NOVELTY_ROWS, 16)
    flagged = float((novelty(probe, test) > 1).float().mean())
    assert 0.01 < flagged < 0.12  # 5 % of validation rows by construction; test rows alike
    assert bool((novelty(probe, test + 4.0) > 1).all())  # shifted four standard deviations: all flagged
    back = LinearProbe.from_state(probe.to_state())  # saved as float16, read back as the same notice
    assert torch.allclose(novelty(back, test), novelty(probe, test), rtol=1e-3)
    assert novelty(LinearProbe(16, ["a", "b"], multilabel=False), test) is None  # a probe without the notice
