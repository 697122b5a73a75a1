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


class TinyConv(torch.nn.Module):
    """A few-hundred-parameter backbone so training tests run in seconds: (B, 1, S, S) -> (B, 8)."""

    num_features = 8

    def __init__(self, input_size: int = 32) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, kernel_size=5, stride=4)
        self.drop = torch.nn.Dropout(0.1)  # exercises the global RNG, which resume must restore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="session", autouse=True)
def _tiny_backbone():
    from s3t.backbones import BACKBONES, register_backbone

    if "tiny_test" not in BACKBONES:
        register_backbone("tiny_test")(TinyConv)
    yield
