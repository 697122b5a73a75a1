"""Supervised baseline: the same encoder trained end-to-end on labels (paper 3.3.1, "Supervised").

The paper's Supervised row quotes other papers' supervised models. To compare like with
like, our Supervised row trains the S3T encoder (same pre-processor and backbone) with a
linear classification head on the labeled training split, then throws the head away and
evaluates the encoder with the same frozen linear probe as S3T and Random-Init.

Choices: each step sees one augmented view per clip from the same music augmentation
pipeline as pre-training (multi-crop and the four transforms; the key view is unused),
softmax cross-entropy for single-label and per-tag binary cross-entropy for multi-label
tasks, AdamW with a cosine schedule and linear warm-up, the last epoch's weights kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from s3t.augment import MusicAugment
from s3t.model import Encoder, ModelConfig, pad_batch, standardize
from s3t.schedule import cosine_with_warmup


@dataclass(frozen=True)
class SupervisedConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: int = 3
    grad_clip: float = 5.0
    seed: int = 0
    augment: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")


def train_supervised(
    clips: Sequence[torch.Tensor],
    targets: torch.Tensor,
    model: ModelConfig,
    config: SupervisedConfig,
    *,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Encoder, list[dict[str, float]]]:
    """Train an encoder + linear head on (clips (F, T_i), targets); return the frozen encoder.

    targets: (N,) long class indices, or (N, C) multi-hot floats for tagging.
    """
    if len(clips) != targets.shape[0] or len(clips) == 0:
        raise ValueError(f"need one target per clip, got {len(clips)} clips and {targets.shape[0]} targets")
    device = torch.device(device)
    multilabel = targets.ndim == 2
    num_outputs = targets.shape[1] if multilabel else int(targets.max()) + 1
    torch.manual_seed(config.seed)
    encoder = Encoder(model).to(device)
    head = nn.Linear(encoder.num_features, num_outputs).to(device)
    augment = MusicAugment(out_frames=encoder.frames, **config.augment).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    steps_per_epoch = math.ceil(len(clips) / config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch

    history, step = [], 0
    for epoch in range(config.epochs):
        encoder.train()
        order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(config.seed + epoch))
        epoch_loss = 0.0
        for start in range(0, len(clips), config.batch_size):
            idx = order[start : start + config.batch_size].tolist()
            x, lengths = pad_batch([clips[i].float() for i in idx])
            x, lengths = x.to(device), lengths.to(device)
            view, _, _ = augment(standardize(x, lengths), lengths, generator=generator)
            lr = cosine_with_warmup(step, total, warmup, config.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(head(encoder(view)), targets[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            epoch_loss += loss.item() * len(idx)
            step += 1
        row = {"epoch": epoch, "loss": epoch_loss / len(clips), "lr": lr}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    encoder.requires_grad_(False)
    return encoder.cpu().eval(), history
