"""Hand-crafted clip features: per-bin statistics of the log-CQT the encoder is fed.

Not in the paper (Section 3.3 compares S3T with Random-Init, Supervised and CLMR). We add
this row because a learned representation has shown its point only when it beats what
simple statistics of its own input already hold: per CQT bin, the mean and the standard
deviation over time, and the mean absolute difference between consecutive frames (how much
the bin moves). The input is exactly the stored feature (log-CQT after the run's time
compression), so the row shares the encoder's front end and differs only in what is learned.
The probe standardises every dimension with training-split statistics, as for every row.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["cqt_statistics", "handcrafted_embeddings"]


def cqt_statistics(spec: torch.Tensor) -> torch.Tensor:
    """Features of one clip. spec: (F, T) log-CQT, T >= 1 -> (3 F,) float32:
    [mean over time, population std over time, mean |frame-to-frame difference|] per bin
    (the last is 0 for a single frame)."""
    if spec.ndim != 2 or spec.shape[1] < 1:
        raise ValueError(f"expected a (F, T) spectrogram with T >= 1, got shape {tuple(spec.shape)}")
    x = spec.float()
    diff = (x[:, 1:] - x[:, :-1]).abs().mean(1) if x.shape[1] > 1 else torch.zeros(x.shape[0])
    return torch.cat([x.mean(1), x.std(1, unbiased=False), diff])


def handcrafted_embeddings(
    clips: Sequence[torch.Tensor], on_clip: Callable[[int], None] | None = None
) -> torch.Tensor:
    """(N, 3 F) float32: :func:`cqt_statistics` of each clip (F, T_i)."""
    rows = []
    for i, clip in enumerate(clips):
        rows.append(cqt_statistics(clip))
        if on_clip is not None:
            on_clip(i + 1)
    if not rows:
        raise ValueError("no clips to describe")
    return torch.stack(rows)
