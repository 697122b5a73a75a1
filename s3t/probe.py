"""Linear evaluation on frozen embeddings (paper 3.2, "Downstream Setup").

One linear layer is trained on embeddings from the frozen encoder with AdamW
(lr 1e-3, weight decay 0.05), a cosine schedule with 5 warm-up epochs, 50 epochs,
batch 64 for GTZAN and 256 for FMA and MTAT. Single-label tasks train with softmax
cross-entropy and report top-1/top-5 accuracy; multi-label tasks train with a sigmoid
per tag (binary cross-entropy) and report macro ROC-AUC and PR-AUC.

Choices where the paper is silent:
- Embeddings are standardised with the mean and standard deviation of the training
  rows (stored in the probe as buffers). This is an affine map, so the probe stays
  linear in the embedding; it only makes one learning rate fit every backbone.
- The epoch kept (paper and ``grid`` protocols) is the one with the best validation metric (top-1,
  or PR-AUC for tagging); the test split is scored once, with that epoch's weights.
- Protocol. The paper's fixed setting stops short of convergence on small training sets (a few
  hundred clips), which can hide the difference between two encoders. The ``grid`` protocol trains
  one AdamW probe per (lr, weight decay) of a small grid and keeps the best epoch of the best setting
  on valid. That pick of the best of 450 noisy validation values is itself noisy: on the soundtracks'
  folds, embeddings that differ by one part in a million moved a 4,704-d embedding's score by
  several points (``bench/probe_stability.py`` at 18674ae). The default, ``logistic``, is the probe as a
  convex problem (:func:`train_logistic`: softmax or per-tag logistic regression with an L2 penalty,
  fitted to convergence by full-batch L-BFGS), one fit per L2 strength, the strength chosen on
  valid: the same linear layer, with no learning rate, batch order or epoch to choose. Each protocol
  records the grid, each setting's validation metric and the selection; test is scored once, at
  the selection.
- k-NN (:func:`knn_evaluate`): a label-free view of the embedding. Cosine similarity between
  standardised embeddings, majority vote of the k nearest training clips (ties: the larger summed
  similarity), or the mean of their tag vectors for tagging; k chosen on validation.
- Tag threshold (:func:`choose_threshold`): a multi-label probe gives scores, while a user
  asking "which tags does this song have" needs a yes or no per tag. One threshold for all tags,
  the one with the best micro-F1 on the validation split, is stored in the probe; one per tag
  would be fitted on a handful of positives for rare tags.
- Cross-validation over train + valid and the intervals of every score live in :mod:`s3t.evaluation`.
- Label fractions (1 %, 10 %) are drawn from the training rows with a fixed seed,
  stratified per class for single-label tasks (at least one row per class). For
  multi-label tasks rows are drawn uniformly, then one row is added for every tag
  that occurs in the training split but not in the draw (at most one row per tag).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s3t.checkpoint import KIND_PROBE, CheckpointError, load_checkpoint
from s3t.metrics import tagging_metrics, top_k_accuracy
from s3t.schedule import cosine_with_warmup


@dataclass(frozen=True)
class ProbeConfig:
    """Hyper-parameters of the linear probe; paper defaults."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class LinearProbe(nn.Module):
    """Standardise, then one linear layer. x: (B, D) -> logits (B, C)."""

    def __init__(self, in_features: int, labels: Sequence[str], multilabel: bool) -> None:
        super().__init__()
        if in_features < 1 or len(labels) < 1:
            raise ValueError(f"a probe needs in_features >= 1 and at least one label, got {in_features}, {len(labels)}")
        self.labels = list(labels)
        self.multilabel = multilabel
        self.threshold: float | None = None  # multi-label: the tag threshold chosen on validation
        # Novelty notice (set_novelty_reference): standardised training rows (M, D) and the distance that 95 % of
        # validation rows stay within.
        self.reference: torch.Tensor | None = None
        self.novelty_threshold: float | None = None
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        self.linear = nn.Linear(in_features, len(labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax) or per-tag probabilities (sigmoid), (B, C)."""
        logits = self.forward(x)
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def to_state(self) -> dict:
        """Plain-data form for :func:`s3t.checkpoint.save_checkpoint`."""
        state = {"labels": self.labels, "multilabel": self.multilabel, "threshold": self.threshold,
                 "state_dict": self.state_dict(), "labels_digest": _labels_digest(self.labels, self.linear.weight)}
        if self.reference is not None:
            state["novelty"] = {"reference": self.reference.half(), "threshold": self.novelty_threshold}
        return state

    @property
    def in_features(self) -> int:
        """Size D of the embeddings the probe takes."""
        return self.linear.in_features

    @classmethod
    def from_state(cls, state: dict) -> "LinearProbe":
        weight = state["state_dict"]["linear.weight"]
        labels = state["labels"]
        # Labels edited by hand (reordered, duplicated, numbers) would name the wrong classes silently.
        if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) and label for label in labels):
            raise ValueError("its labels must be a list of non-empty strings")
        if len(set(labels)) != len(labels):
            raise ValueError(f"its labels repeat {sorted({x for x in labels if labels.count(x) > 1})[:3]}")
        if len(labels) != weight.shape[0]:
            raise ValueError(f"it names {len(labels)} labels for a head of {weight.shape[0]} outputs")
        if not isinstance(state["multilabel"], bool):
            raise ValueError("its multilabel flag is not true or false")
        # Probes written before the digest existed have none; a reordered label list keeps count and type.
        if "labels_digest" in state and state["labels_digest"] != _labels_digest(labels, weight):
            raise ValueError("its labels or weights were changed after training (they no longer match their digest)")
        probe = cls(weight.shape[1], list(labels), state["multilabel"])
        probe.load_state_dict(state["state_dict"])
        probe.threshold = state.get("threshold")  # absent from probes written before thresholds existed
        novelty = state.get("novelty")  # absent from probes written before the notice existed
        if novelty is not None:
            reference, threshold = novelty["reference"], novelty["threshold"]
            if reference.ndim != 2 or reference.shape[1] != weight.shape[1] or not (threshold > 0 and math.isfinite(threshold)):
                raise ValueError("its novelty reference does not fit its head")
            probe.reference, probe.novelty_threshold = reference.float(), float(threshold)
        return probe


NOVELTY_ROWS = 256
"""Most training rows a probe keeps for the novelty notice (float16: 2.4 MB at 4,704 dimensions)."""

NOVELTY_QUANTILE = 0.95
"""Share of the validation rows whose distance to the nearest kept training row is under the notice's threshold."""


@torch.no_grad()
def set_novelty_reference(probe: LinearProbe, train_x: torch.Tensor, valid_x: torch.Tensor, *, seed: int = 0) -> None:
    """Give ``probe`` what :func:`novelty` needs: up to :data:`NOVELTY_ROWS` of its training rows ``train_x`` (N, D)
    standardised as the probe sees them, and as the threshold the distance from a held-out row (``valid_x``, M x D)
    to its nearest kept training row that :data:`NOVELTY_QUANTILE` of them stay within."""
    z = (train_x.float() - probe.mean) / probe.std
    if z.shape[0] > NOVELTY_ROWS:
        z = z[torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:NOVELTY_ROWS]]
    probe.reference = z.half().float()  # what a saved probe holds
    distances = _nearest(probe, valid_x)
    probe.novelty_threshold = max(float(torch.quantile(distances, NOVELTY_QUANTILE)), 1e-6)


def _nearest(probe: LinearProbe, x: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (B,) from each standardised row of x (B, D) to its nearest reference row."""
    return torch.cdist((x.float() - probe.mean) / probe.std, probe.reference).min(dim=1).values


@torch.no_grad()
def novelty(probe: LinearProbe, x: torch.Tensor) -> torch.Tensor | None:
    """How unlike the probe's training music each embedding of x (B, D) is: its distance to the nearest training
    row over the distance that 95 % of held-out (validation) rows stay within, (B,). Above 1 the input is further
    from everything the probe was trained on than almost all held-out music was: a notice that its labels are
    less trustworthy, not a guarantee either way. None for probes written before the notice existed."""
    if probe.reference is None:
        return None
    return _nearest(probe, x) / probe.novelty_threshold


def _labels_digest(labels: Sequence[str], weight: torch.Tensor) -> str:
    """sha256 of the label list and the head's weights (C, D) together: row c of the weights is label c."""
    digest = hashlib.sha256(json.dumps(list(labels)).encode("utf-8"))
    digest.update(weight.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_probe(path, *, in_features: int | None = None) -> LinearProbe:
    """The probe of a ``s3t-probe`` checkpoint, in eval mode.

    Args:
        path: the checkpoint.
        in_features: the embedding size D of the encoder the probe will be used with; None
            skips that check.

    Raises:
        CheckpointError: not a probe checkpoint, a damaged one, or one taking embeddings of
            another size than ``in_features`` (a probe trained on another encoder's embeddings).
    """
    state = load_checkpoint(path, kind=KIND_PROBE)
    try:
        probe = LinearProbe.from_state(state["probe"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        raise CheckpointError(f"{path} is a damaged probe checkpoint ({type(err).__name__}: {err})") from None
    if in_features is not None and probe.in_features != in_features:
        raise CheckpointError(
            f"{path} takes {probe.in_features}-dimensional embeddings but the encoder gives {in_features}; "
            f"use the probe trained on this encoder's embeddings"
        )
    return probe.eval()


def encode_targets(label_rows: Sequence[Sequence[str]], labels: Sequence[str], multilabel: bool) -> torch.Tensor:
    """Class indices (N,) long, or a multi-hot (N, C) float matrix for tagging."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({lab for row in label_rows for lab in row if lab not in index})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not in the probe's label set")
    if multilabel:
        targets = torch.zeros(len(label_rows), len(labels))
        for i, row in enumerate(label_rows):
            targets[i, [index[lab] for lab in row]] = 1.0
        return targets
    bad = [i for i, row in enumerate(label_rows) if len(row) != 1]
    if bad:
        raise ValueError(f"single-label targets need exactly one label per row; rows {bad[:5]} have {len(label_rows[bad[0]])}")
    return torch.tensor([index[row[0]] for row in label_rows], dtype=torch.long)


def choose_threshold(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """The score threshold, one for all tags, with the best micro-F1 of ``score >= threshold``.

    scores: (N, C) per-tag probabilities; targets: (N, C) multi-hot. Ties go to the higher
    threshold (fewer tags shown). With no positive target at all, 0.5.
    """
    flat, truth = scores.flatten().double(), targets.flatten().double()
    positives = truth.sum()
    if positives == 0:
        return 0.5
    order = torch.argsort(flat, descending=True, stable=True)
    ranked, hits = flat[order], truth[order].cumsum(0)
    predicted = torch.arange(1, flat.numel() + 1, dtype=torch.float64)
    # Only the last of equal scores is a threshold that can be applied (>= keeps them all).
    last = torch.ones_like(ranked, dtype=torch.bool)
    last[:-1] = ranked[1:] != ranked[:-1]
    f1 = torch.where(last, 2 * hits / (predicted + positives), torch.full_like(hits, -1.0))
    return float(ranked[int(torch.argmax(f1))])


def label_fraction(targets: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices of a fixed-seed subset holding ``fraction`` of the rows (see module docstring)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = targets.shape[0]
    if fraction == 1:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    if targets.ndim == 1:
        chosen = []
        for c in torch.unique(targets):
            rows = torch.nonzero(targets == c).flatten()
            take = max(1, round(fraction * rows.numel()))
            chosen.append(rows[torch.randperm(rows.numel(), generator=g)[:take]])
        return torch.sort(torch.cat(chosen)).values
    budget = max(1, round(fraction * n))
    order = torch.randperm(n, generator=g)
    chosen = order[:budget]
    # Add one row for each tag the uniform draw missed, so no tag is left without a positive.
    rest = order[budget:]
    missing = (targets[chosen].sum(0) == 0) & (targets.sum(0) > 0)
    extra = [rest[targets[rest, tag] > 0][0] for tag in torch.nonzero(missing).flatten()]
    if extra:
        chosen = torch.unique(torch.cat([chosen, torch.stack(extra)]))
    return torch.sort(chosen).values


def score_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """top1 (and top5 where there are more than 5 classes: with 5 or fewer it is always 1) for
    single-label scores (N, C) and targets (N,); roc_auc/pr_auc for multi-hot targets (N, C)."""
    if targets.ndim == 2:
        return tagging_metrics(scores, targets)
    result = {"top1": top_k_accuracy(scores, targets, 1)}
    if scores.shape[1] > 5:
        result["top5"] = top_k_accuracy(scores, targets, 5)
    return result


def evaluate(probe: LinearProbe, x: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """:func:`score_metrics` of the probe's scores on ``x`` (N, D)."""
    probe.eval()
    with torch.no_grad():
        scores = probe.scores(x).cpu().numpy()
    return score_metrics(scores, targets.cpu().numpy())


def train_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    valid_x: torch.Tensor,
    valid_y: torch.Tensor,
    labels: Sequence[str],
    multilabel: bool,
    config: ProbeConfig = ProbeConfig(),
) -> tuple[LinearProbe, list[dict[str, float]]]:
    """Train a probe; return the best-on-valid probe and a per-epoch history.

    train_x: (N, D) frozen embeddings; train_y: (N,) long or (N, C) multi-hot.
    History rows hold epoch, lr, train loss and the validation metrics.
    """
    if train_x.shape[0] != train_y.shape[0] or train_x.shape[0] == 0:
        raise ValueError(f"train_x and train_y must be non-empty with equal rows, got {train_x.shape[0]}, {train_y.shape[0]}")
    g = torch.Generator().manual_seed(config.seed)
    probe = LinearProbe(train_x.shape[1], labels, multilabel)
    with torch.no_grad():
        nn.init.normal_(probe.linear.weight, std=0.01, generator=g)
        nn.init.zeros_(probe.linear.bias)
        probe.mean.copy_(train_x.mean(0))
        probe.std.copy_(train_x.std(0, unbiased=False).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    steps_per_epoch = math.ceil(train_x.shape[0] / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = config.warmup_epochs * steps_per_epoch
    select_key = "pr_auc" if multilabel else "top1"
    best, best_state, history, step = -math.inf, None, [], 0
    for epoch in range(config.epochs):
        probe.train()
        order = torch.randperm(train_x.shape[0], generator=g)
        total = 0.0
        for start in range(0, order.numel(), config.batch_size):
            idx = order[start : start + config.batch_size]
            lr = cosine_with_warmup(step, total_steps, warmup_steps, config.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(probe(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * idx.numel()
            step += 1
        metrics = evaluate(probe, valid_x, valid_y)
        history.append({"epoch": epoch, "lr": lr, "train_loss": total / train_x.shape[0], **metrics})
        if metrics[select_key] > best:
            best, best_state = metrics[select_key], copy.deepcopy(probe.state_dict())
    probe.load_state_dict(best_state)
    probe.eval()
    return probe, history


def lr_wd_grid(lrs: Sequence[float], weight_decays: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """Every (lr, weight decay) pair of the ``grid`` protocol, lr-major: params.yaml's `probe.grid`
    lists the two axes, the protocol takes their product."""
    return tuple((lr, wd) for lr in lrs for wd in weight_decays)


DEFAULT_GRID = lr_wd_grid((1e-3, 3e-3, 1e-2), (0.0, 0.05, 0.5))
"""(lr, weight decay) settings of the ``grid`` protocol: 3 x 3 around the paper's (1e-3, 0.05)."""

L2_GRID = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
"""L2 strengths of the ``logistic`` protocol, strongest first (each fit starts from the previous one)."""


PROTOCOLS = ("logistic", "grid", "paper")
"""The probe protocols (:func:`protocol_options`)."""


def protocol_options(protocol: str, *, grid: Sequence[tuple[float, float]] = DEFAULT_GRID,
                     l2: Sequence[float] = L2_GRID) -> dict:
    """:func:`probe_splits`'s ``grid``/``l2`` keywords for a protocol name: ``logistic`` fits each of
    ``l2`` to convergence (:func:`train_logistic`), ``grid`` trains the AdamW probe at each (lr, weight
    decay) of ``grid``, ``paper`` trains it once at the config's setting. The best on valid is kept."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"probe protocol is {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "logistic":
        if not l2 or any(v <= 0 for v in l2):
            raise ValueError(f"the logistic protocol needs positive l2 strengths, got {list(l2)}")
        return {"grid": None, "l2": tuple(l2)}
    if protocol == "grid":
        if not grid:
            raise ValueError("the grid protocol needs at least one (lr, weight decay) setting")
        return {"grid": tuple(grid), "l2": None}
    return {"grid": None, "l2": None}


def train_logistic(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    labels: Sequence[str],
    multilabel: bool,
    l2: float,
    *,
    init: LinearProbe | None = None,
    max_iter: int = 500,
) -> tuple[LinearProbe, dict[str, float]]:
    """Fit the probe as a convex problem, to convergence: the mean softmax cross-entropy (or, for
    tagging, binary cross-entropy over every tag) of the standardised embeddings plus
    ``l2 / 2 * ||W||^2`` (the bias is not penalised), minimised by full-batch L-BFGS in float64.

    No learning rate, batch order or epoch to choose, and no random draw: the same embeddings give
    the same probe, and embeddings that differ by rounding give a probe that differs by rounding
    (the epoch-by-epoch selection of :func:`train_probe` can jump to another epoch instead).
    ``init`` (a probe of the same shape, e.g. the fit at the next stronger ``l2``) is the start;
    otherwise zeros. Returns the probe and {"l2", "iterations", "train_loss", "grad_max"}: the
    largest absolute gradient entry at the end says how close to the optimum it stopped.
    """
    if train_x.shape[0] != train_y.shape[0] or train_x.shape[0] == 0:
        raise ValueError(f"train_x and train_y must be non-empty with equal rows, got {train_x.shape[0]}, {train_y.shape[0]}")
    if l2 <= 0 or max_iter < 1:
        raise ValueError(f"l2 must be > 0 and max_iter >= 1, got {l2} and {max_iter}")
    probe = LinearProbe(train_x.shape[1], labels, multilabel)
    mean = train_x.double().mean(0)
    std = train_x.double().std(0, unbiased=False).clamp_min(1e-6)
    z = (train_x.double() - mean) / std  # (N, D)
    # With fewer rows than dimensions the optimum's weights lie in the span of the training rows (the
    # penalty sends every direction orthogonal to them to 0), so the fit runs in an orthonormal basis
    # of that span: the same problem, isometrically (so L-BFGS takes the same steps), at N / D of
    # the cost per step. basis: (r, D), r <= N.
    basis = None
    if z.shape[0] < z.shape[1]:
        _, singular, vh = torch.linalg.svd(z, full_matrices=False)
        basis = vh[singular > singular[0] * 1e-12]
    features = z if basis is None else z @ basis.T  # (N, D) or (N, r)
    target = train_y.double() if multilabel else train_y
    weight = torch.zeros(len(labels), features.shape[1], dtype=torch.float64)  # (C, D) or (C, r)
    bias = torch.zeros(len(labels), dtype=torch.float64)
    if init is not None:
        start = init.linear.weight.detach().double()
        weight.copy_(start if basis is None else start @ basis.T)
        bias.copy_(init.linear.bias.detach())
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")
    loss_fn = F.binary_cross_entropy_with_logits if multilabel else F.cross_entropy

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(features @ weight.T + bias, target) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    loss = objective()
    full_weight = weight.detach() if basis is None else weight.detach() @ basis
    with torch.no_grad():
        probe.mean.copy_(mean)
        probe.std.copy_(std)
        probe.linear.weight.copy_(full_weight)
        probe.linear.bias.copy_(bias)
    weight_grad = weight.grad if basis is None else weight.grad @ basis  # the gradient in all D dimensions
    grad_max = max(float(weight_grad.abs().max()), float(bias.grad.abs().max()))
    iterations = int(optimizer.state[weight]["n_iter"])
    return probe.eval(), {"l2": l2, "iterations": iterations, "train_loss": float(loss.detach()), "grad_max": grad_max}

KNN_KS = (1, 3, 5, 10, 20)
"""Neighbour counts :func:`knn_evaluate` chooses from on validation."""


def knn_scores(train_x: torch.Tensor, train_y: torch.Tensor, x: torch.Tensor, k: int, n_classes: int) -> torch.Tensor:
    """Class (or tag) scores (N, C) of ``x`` from its ``k`` nearest training rows by cosine similarity.

    Inputs are standardised embeddings; ``train_y`` is (M,) class indices or (M, C) multi-hot.
    Single-label: neighbour votes plus 1e-3 x their summed similarity (which breaks ties only).
    Multi-label: the mean of the neighbours' tag vectors."""
    sims = F.normalize(x, dim=1) @ F.normalize(train_x, dim=1).T  # (N, M)
    top, idx = sims.topk(min(k, train_x.shape[0]), dim=1)
    if train_y.ndim == 2:
        return train_y[idx].mean(1)
    votes = F.one_hot(train_y[idx], n_classes).float()  # (N, k, C)
    return votes.sum(1) + 1e-3 * (votes * top[..., None]).sum(1)


def knn_evaluate(
    train_x: torch.Tensor, train_y: torch.Tensor, valid_x: torch.Tensor, valid_y: torch.Tensor,
    test_x: torch.Tensor, test_y: torch.Tensor, n_classes: int, ks: Sequence[int] = KNN_KS,
) -> dict:
    """k-NN with k chosen on valid (top-1, or PR-AUC for tagging): {"k", "valid", "test", "grid", "scores"}, where
    "scores" are the test rows' class (or tag) scores at that k, (N_test, C) numpy."""
    mean, std = train_x.mean(0), train_x.std(0, unbiased=False).clamp_min(1e-6)
    z = [(t - mean) / std for t in (train_x, valid_x, test_x)]

    def metrics(x: torch.Tensor, y: torch.Tensor, k: int) -> dict[str, float]:
        return score_metrics(knn_scores(z[0], train_y, x, k, n_classes).numpy(), y.numpy())

    key = "pr_auc" if train_y.ndim == 2 else "top1"
    grid = [{"k": k, "valid": metrics(z[1], valid_y, k)[key]} for k in ks]
    best = max(grid, key=lambda row: row["valid"])  # first (smallest k) among equals
    scores = knn_scores(z[0], train_y, z[2], best["k"], n_classes).numpy()
    return {"k": best["k"], "valid": best["valid"], "test": score_metrics(scores, test_y.numpy()), "grid": grid,
            "scores": scores}


@dataclass
class SplitFit:
    """What :func:`fit_splits` gives: the selected probe, its result and history (see
    :func:`probe_splits`), and the test rows' scores, for intervals (:mod:`s3t.evaluation`).

    test_scores: (N_test, C) class probabilities or tag probabilities of the probe; test_targets:
    (N_test,) class indices or (N_test, C) multi-hot; knn_scores: the k-NN's scores of the same rows
    at the k chosen on valid (None without k-NN). Rows in the order of the test rows of ``splits``.
    """

    probe: LinearProbe
    result: dict
    history: list[dict[str, float]]
    test_scores: np.ndarray
    test_targets: np.ndarray
    knn_scores: np.ndarray | None


def probe_splits(
    x: torch.Tensor,
    label_rows: Sequence[Sequence[str]],
    splits: Sequence[str],
    labels: Sequence[str],
    multilabel: bool,
    **kwargs,
) -> tuple[LinearProbe, dict, list[dict[str, float]]]:
    """(probe, result, history) of :func:`fit_splits` (same arguments)."""
    fit = fit_splits(x, label_rows, splits, labels, multilabel, **kwargs)
    return fit.probe, fit.result, fit.history


def fit_splits(
    x: torch.Tensor,
    label_rows: Sequence[Sequence[str]],
    splits: Sequence[str],
    labels: Sequence[str],
    multilabel: bool,
    *,
    fraction: float = 1.0,
    config: ProbeConfig = ProbeConfig(),
    grid: Sequence[tuple[float, float]] | None = None,
    l2: Sequence[float] | None = None,
    knn: bool = False,
) -> SplitFit:
    """Linear evaluation on one dataset: train on ``fraction`` of the train rows, select on
    valid, score test. With ``grid`` (lr, weight decay) pairs, one probe per pair (the other
    settings from ``config``) and the best on valid is kept; with ``l2`` strengths, one
    :func:`train_logistic` fit per strength, in the order given, each starting from the one before,
    and the best on valid is kept (the ``logistic`` protocol); with neither, ``config`` alone (the
    paper's protocol). The result holds the test metrics, the valid metrics under "valid", the row
    counts, for tagging the tag "threshold" (also set on the probe, :func:`choose_threshold` on
    valid), and with a grid or ``l2`` "selection" and "grid"; with ``knn`` the k-NN result under
    "knn". History rows are per epoch (keyed "epoch"), or per strength for ``l2`` (keyed "l2")."""
    if grid and l2:
        raise ValueError("give an (lr, weight decay) grid or l2 strengths, not both")
    y = encode_targets(label_rows, labels, multilabel)
    masks = {name: torch.tensor([s == name for s in splits], dtype=torch.bool) for name in ("train", "valid", "test")}
    for name, mask in masks.items():
        if not mask.any():
            raise ValueError(f"no {name!r} rows; a probe needs train, valid and test splits")
    train_idx = torch.nonzero(masks["train"]).flatten()
    train_idx = train_idx[label_fraction(y[train_idx], fraction, seed=config.seed)]
    key = "pr_auc" if multilabel else "top1"
    valid_x, valid_y = x[masks["valid"]], y[masks["valid"]]
    searched = []
    best = None
    if l2:
        fits, probe = [], None
        for strength in l2:
            probe, fit = train_logistic(x[train_idx], y[train_idx], labels, multilabel, strength, init=probe)
            metrics = evaluate(probe, valid_x, valid_y)
            fits.append({**fit, **metrics})
            searched.append({"l2": strength, "valid": metrics[key], "iterations": fit["iterations"]})
            if best is None or metrics[key] > best[0]:  # the stronger strength among equals
                best = (metrics[key], probe, strength)
        _, probe, strength = best
        return _finish(probe, fits, x, y, masks, train_idx, fraction, multilabel, labels, knn,
                       {"selection": {"l2": strength}, "grid": searched})
    for lr, weight_decay in grid or [(config.lr, config.weight_decay)]:
        setting = dataclasses.replace(config, lr=lr, weight_decay=weight_decay)
        probe, history = train_probe(x[train_idx], y[train_idx], valid_x, valid_y, labels, multilabel, setting)
        metric = evaluate(probe, valid_x, valid_y)[key]
        searched.append({"lr": lr, "weight_decay": weight_decay, "valid": metric})
        if best is None or metric > best[0]:  # first in grid order among equals
            best = (metric, probe, history, lr, weight_decay)
    _, probe, history, lr, weight_decay = best
    chosen = {"selection": {"lr": lr, "weight_decay": weight_decay}, "grid": searched} if grid else {}
    return _finish(probe, history, x, y, masks, train_idx, fraction, multilabel, labels, knn, chosen)


def _finish(probe: LinearProbe, history: list[dict[str, float]], x: torch.Tensor, y: torch.Tensor,
            masks: dict[str, torch.Tensor], train_idx: torch.Tensor, fraction: float, multilabel: bool,
            labels: Sequence[str], knn: bool, chosen: dict) -> SplitFit:
    """The selected probe with its tag threshold, its result and its test scores."""
    valid_x, valid_y = x[masks["valid"]], y[masks["valid"]]
    test_x, test_y = x[masks["test"]], y[masks["test"]]
    with torch.no_grad():
        test_scores = probe.eval().scores(test_x).cpu().numpy()
    result = {
        **score_metrics(test_scores, test_y.numpy()),
        "valid": evaluate(probe, valid_x, valid_y),
        "fraction": fraction,
        "n_train": int(train_idx.numel()),
        "n_valid": int(masks["valid"].sum()),
        "n_test": int(masks["test"].sum()),
    }
    if multilabel:
        with torch.no_grad():
            probe.threshold = choose_threshold(probe.scores(valid_x), valid_y)
        result["threshold"] = probe.threshold
    set_novelty_reference(probe, x[train_idx], valid_x)
    result.update(chosen)
    knn_test = None
    if knn:
        result["knn"] = knn_evaluate(x[train_idx], y[train_idx], valid_x, valid_y, test_x, test_y, len(labels))
        knn_test = result["knn"].pop("scores")
    return SplitFit(probe, result, history, test_scores, test_y.numpy(), knn_test)
