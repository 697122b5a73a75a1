"""Learning-rate schedule: linear warm-up then cosine decay (paper 3.2).

The paper uses "a cosine decay learning rate scheduler and 20 epochs of linear warm-up"
for pre-training and 5 warm-up epochs for the linear probes, without stating the floor.
We decay to ``min_lr`` (default 0) and count in optimizer steps, so a run resumed at
step ``s`` recomputes exactly the learning rate the uninterrupted run would have used.
"""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` (0-based).

    Linear from ``base_lr / warmup_steps`` up to ``base_lr`` over the first ``warmup_steps``
    steps, then half a cosine from ``base_lr`` down to ``min_lr`` at ``total_steps``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
