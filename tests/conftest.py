"""Shared fixtures: tiny shapes, seeded RNGs, real audio files in real formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)


def tone(freq_hz: float, seconds: float = 2.0, sample_rate: int = 22050, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32, shape (seconds * sample_rate,)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
