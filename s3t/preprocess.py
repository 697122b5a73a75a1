"""Spectrogram pre-processors that make the square Swin input (paper 2.4, 3.2).

The paper adapts the F = 84-bin CQT to a Swin-T with a 256 x 256 input (3.2) with two
pre-processors (2.4):

* Frequency Tiling: "Replicate a spectrogram with shape of F x T in frequency domain n
  times to (F * n) x T, then cut out extra high frequency part to form a shape of T x T."
* Time Folding: "Fold a music spectrogram along time axis n times, i.e. a spectrogram
  with shape F x T is directly collapsed into (F * n) x (T / n), with equal length and
  width."

Both map (B, F, frames) to (B, 1, S, S), S = ``input_size``; rows are frequency (row 0 =
lowest bin), columns are time.

What the paper leaves open and what we chose, for F = 84, S = 256:

* Tiling: n = ceil(S / F) = 4 copies give 336 rows; the lowest 256 are kept (three full
  copies, rows 0..251, plus bins 0..3 of the fourth copy, rows 252..255) and the 80
  highest rows are cut, as the paper says. The input needs ``frames = S`` = 256 frames.
* Folding: F * n equals S for no integer n when F = 84 does not divide 256. We take
  n = max(1, S // F) = 3 folds, the most that fit: the input needs ``frames = S * n`` = 768
  frames, cut into 3 consecutive chunks of 256 frames stacked along frequency (chunk 0 in
  rows 0..83, chunk 1 in 84..167, chunk 2 in 168..251), and the remaining 4 rows
  (252..255) are filled with ``fill`` (0.0 = the clip mean of a standardised input).
  Four folds would need 336 rows and either lose a quarter of the music or rescale
  the frequency axis; padding 4 rows keeps every value unchanged, which is the property
  the paper credits for folding beating tiling (3.3.2, Table 4). Only when S < F (n = 1
  and F > S rows) are the highest bins cut instead.
* Tiling never needs padding (F * ceil(S / F) >= S); it accepts ``fill`` only so both
  pre-processors share one constructor signature in the registry.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_sizes(n_bins: int, input_size: int) -> None:
    if n_bins < 1 or int(n_bins) != n_bins:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    if input_size < 1 or int(input_size) != input_size:
        raise ValueError(f"input_size must be a positive integer, got {input_size}")


def _check_input(x: Tensor, n_bins: int, frames: int, name: str) -> None:
    if x.dim() != 3 or x.shape[1] != n_bins or x.shape[2] != frames:
        raise ValueError(
            f"{name} expects a (B, {n_bins}, {frames}) spectrogram (frames = {frames}), got shape {tuple(x.shape)}; "
            f"crop or resize the clip to {frames} frames"
        )


def frequency_tile(x: Tensor, n_tiles: int, input_size: int) -> Tensor:
    """(B, F, S) -> (B, 1, S, S): stack ``n_tiles`` copies along frequency, keep the lowest S rows."""
    return x.repeat(1, n_tiles, 1)[:, :input_size].unsqueeze(1)


def time_fold(x: Tensor, n_folds: int, input_size: int, fill: float) -> Tensor:
    """(B, F, S * n) -> (B, 1, S, S): chunk c of S frames goes to rows [c * F, (c + 1) * F)."""
    batch, bins, _ = x.shape
    folded = x.reshape(batch, bins, n_folds, input_size).transpose(1, 2)  # (B, n, F, S)
    folded = folded.reshape(batch, n_folds * bins, input_size)  # (B, F * n, S)
    extra = input_size - n_folds * bins
    if extra >= 0:
        folded = F.pad(folded, (0, 0, 0, extra), value=fill)  # fill the high-frequency end
    else:
        folded = folded[:, :input_size]
    return folded.unsqueeze(1)


class FrequencyTiling(nn.Module):
    """Frequency Tiling (paper 2.4): (B, n_bins, S) -> (B, 1, S, S) by repeating the bins."""

    def __init__(self, n_bins: int = 84, input_size: int = 256, fill: float = 0.0) -> None:
        super().__init__()
        _check_sizes(n_bins, input_size)
        self.n_bins = n_bins
        self.input_size = input_size
        self.fill = fill
        self.n_tiles = math.ceil(input_size / n_bins)

    @property
    def frames(self) -> int:
        """Time frames the input must have (= input_size)."""
        return self.input_size

    def row_bins(self) -> Tensor:
        """(S,) long: the CQT bin each input row holds (row i holds bin i mod n_bins)."""
        return torch.arange(self.input_size) % self.n_bins

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, n_bins, S) -> (B, 1, S, S)
        _check_input(x, self.n_bins, self.frames, type(self).__name__)
        return frequency_tile(x, self.n_tiles, self.input_size)

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, input_size={self.input_size}, n_tiles={self.n_tiles}"


class TimeFolding(nn.Module):
    """Time Folding (paper 2.4): (B, n_bins, S * n) -> (B, 1, S, S) by stacking time chunks."""

    def __init__(self, n_bins: int = 84, input_size: int = 256, fill: float = 0.0) -> None:
        super().__init__()
        _check_sizes(n_bins, input_size)
        self.n_bins = n_bins
        self.input_size = input_size
        self.fill = fill
        self.n_folds = max(1, input_size // n_bins)

    @property
    def frames(self) -> int:
        """Time frames the input must have (= input_size * n_folds)."""
        return self.input_size * self.n_folds

    def row_bins(self) -> Tensor:
        """(S,) long: the CQT bin each input row holds, -1 for the ``fill`` rows above the last fold."""
        rows = torch.arange(self.input_size)
        return torch.where(rows < self.n_folds * self.n_bins, rows % self.n_bins, -1)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, n_bins, S * n) -> (B, 1, S, S)
        _check_input(x, self.n_bins, self.frames, type(self).__name__)
        return time_fold(x, self.n_folds, self.input_size, self.fill)

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, input_size={self.input_size}, n_folds={self.n_folds}, fill={self.fill}"


PREPROCESSORS: dict[str, type[nn.Module]] = {
    "time_folding": TimeFolding,
    "frequency_tiling": FrequencyTiling,
}


def build_preprocessor(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered pre-processor by name (kwargs go to its constructor)."""
    if name not in PREPROCESSORS:
        raise ValueError(f"unknown pre-processor {name!r}; valid names: {', '.join(sorted(PREPROCESSORS))}")
    return PREPROCESSORS[name](**kwargs)
