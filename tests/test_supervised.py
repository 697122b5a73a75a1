import pytest
import torch

from s3t.model import ModelConfig
from s3t.supervised import SupervisedConfig, train_supervised

MODEL = ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32)


def _two_classes(n=16):
    """Class 0 has energy in low bins, class 1 in high bins: (84, 60) clips."""
    g = torch.Generator().manual_seed(0)
    clips, y = [], []
    for i in range(n):
        c = torch.randn(84, 60, generator=g) * 0.1
        band = slice(0, 20) if i % 2 == 0 else slice(60, 84)
        c[band] += 3.0
        clips.append(c)
        y.append(i % 2)
    return clips, torch.tensor(y)


def test_supervised_training_lowers_the_loss_and_returns_a_frozen_encoder():
    clips, y = _two_classes()
    encoder, history = train_supervised(clips, y, MODEL, SupervisedConfig(epochs=15, batch_size=8, lr=1e-2, warmup_epochs=1))
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(not p.requires_grad for p in encoder.parameters()) and not encoder.training


def test_multilabel_targets_and_validation():
    clips, y = _two_classes(8)
    multi = torch.stack([y.float(), 1 - y.float()], dim=1)
    encoder, history = train_supervised(clips, multi, MODEL, SupervisedConfig(epochs=2, batch_size=4, warmup_epochs=0))
    assert len(history) == 2
    with pytest.raises(ValueError, match="one target per clip"):
        train_supervised(clips, y[:3], MODEL, SupervisedConfig(epochs=1, warmup_epochs=0))
