"""Audio files -> compressed log-CQT clips (paper 3.2 "Model Input").

Decoding (the slow, CPU-bound part) runs in worker processes; the CQT runs in the
calling process on the CQT module's device. A file that cannot be used is never dropped
silently: it comes back as a :class:`Rejected` record with the reason from
:class:`s3t.audio.AudioError`.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from s3t.audio import AudioError, load_audio
from s3t.cqt import CQT


@dataclass(frozen=True)
class Rejected:
    """A file left out of the features, and why."""

    path: str
    reason: str


def _decode(job: tuple[str, int, float]) -> tuple[str, np.ndarray | None, str]:
    path, sample_rate, min_seconds = job
    try:
        return path, load_audio(path, sample_rate, min_seconds=min_seconds), ""
    except AudioError as err:
        return path, None, err.reason


def decode_files(
    paths: Sequence[str | os.PathLike], sample_rate: int, *, min_seconds: float = 0.0, workers: int = 0
) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """Yield (path, waveform or None, reason) in input order; ``workers`` > 0 decodes in that many processes."""
    jobs = [(str(p), sample_rate, min_seconds) for p in paths]
    if workers > 0:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(_decode, jobs, chunksize=4)
    else:
        yield from map(_decode, jobs)


@torch.no_grad()
def featurize_files(
    paths: Sequence[str | os.PathLike],
    cqt: CQT,
    *,
    min_seconds: float = 0.0,
    workers: int = 0,
    on_file: Callable[[str], None] | None = None,
) -> tuple[list[torch.Tensor], list[str], list[Rejected]]:
    """Compressed log-CQT (n_bins, frames) float32 CPU tensors of every usable file.

    Returns (features, kept paths in input order, rejected files with reasons).
    """
    device = next(iter(cqt.buffers()), torch.empty(0)).device
    features, kept, rejected = [], [], []
    for path, wave, reason in decode_files(paths, cqt.config.sample_rate, min_seconds=min_seconds, workers=workers):
        if wave is None:
            rejected.append(Rejected(path, reason))
        else:
            features.append(cqt(torch.from_numpy(wave).to(device)[None])[0].cpu())
            kept.append(path)
        if on_file is not None:
            on_file(path)
    return features, kept, rejected
