"""Tests for s3t.preprocess: both pre-processors map the 84-bin CQT onto a 256 x 256 input
(paper 2.4, 3.2) and every output cell is a known input cell or the fill value."""

from __future__ import annotations

import pytest
import torch

from s3t.preprocess import PREPROCESSORS, FrequencyTiling, TimeFolding, build_preprocessor


def unique_batch(batch: int, bins: int, frames: int) -> torch.Tensor:
    """Every cell distinct and > 0, so a fill of -1 never collides with data."""
    return torch.arange(1, batch * bins * frames + 1, dtype=torch.float32).view(batch, bins, frames)


def test_time_folding_paper_sizes_keep_every_value_at_its_predicted_place():
    fold = TimeFolding(fill=-1.0)
    assert fold.n_folds == 3 and fold.frames == 768
    x = unique_batch(2, 84, 768)
    out = fold(x)
    assert out.shape == (2, 1, 256, 256)
    for chunk in range(3):
        # chunk c (frames [256c, 256c + 256)) lands in rows [84c, 84c + 84), lowest chunk lowest
        assert torch.equal(out[:, 0, 84 * chunk : 84 * (chunk + 1)], x[:, :, 256 * chunk : 256 * (chunk + 1)])
    assert (out[:, 0, 252:] == -1.0).all()
    assert torch.equal(out[:, 0, :252].flatten().sort().values, x.flatten().sort().values)


def test_time_folding_cuts_high_bins_when_input_smaller_than_bins():
    fold = TimeFolding(n_bins=10, input_size=8)
    assert fold.n_folds == 1 and fold.frames == 8
    x = unique_batch(3, 10, 8)
    assert torch.equal(fold(x)[:, 0], x[:, :8])


def test_frequency_tiling_paper_sizes_repeat_rows_exactly():
    tile = FrequencyTiling()
    assert tile.n_tiles == 4 and tile.frames == 256
    x = unique_batch(2, 84, 256)
    out = tile(x)
    assert out.shape == (2, 1, 256, 256)
    rows = torch.arange(256) % 84  # three full copies, then bins 0..3 of the fourth
    assert torch.equal(out[:, 0], x[:, rows])


@pytest.mark.parametrize(("cls", "frames"), [(TimeFolding, 768), (FrequencyTiling, 256)])
def test_wrong_input_shape_names_expected_frames(cls, frames):
    pre = cls()
    with pytest.raises(ValueError, match=f"frames = {frames}"):
        pre(torch.zeros(1, 84, frames - 1))
    with pytest.raises(ValueError, match="84"):
        pre(torch.zeros(1, 80, frames))
    with pytest.raises(ValueError):
        pre(torch.zeros(84, frames))


def test_constructor_validates_sizes():
    with pytest.raises(ValueError, match="n_bins"):
        TimeFolding(n_bins=0)
    with pytest.raises(ValueError, match="input_size"):
        FrequencyTiling(input_size=-4)


def test_registry_builds_by_name_and_lists_valid_names():
    assert set(PREPROCESSORS) == {"time_folding", "frequency_tiling"}
    fold = build_preprocessor("time_folding", n_bins=12, input_size=48, fill=2.0)
    assert isinstance(fold, TimeFolding) and fold.n_folds == 4 and fold.frames == 192
    assert isinstance(build_preprocessor("frequency_tiling"), FrequencyTiling)
    with pytest.raises(ValueError, match="frequency_tiling, time_folding"):
        build_preprocessor("time_tiling")


def test_row_bins_name_the_cqt_bin_of_every_input_row():
    import torch

    from s3t.preprocess import FrequencyTiling, TimeFolding

    fold = TimeFolding(n_bins=84, input_size=256)
    x = torch.arange(84.0)[None, :, None].expand(1, 84, fold.frames)  # each bin holds its own index
    image = fold(x)[0, 0, :, 0]
    bins = fold.row_bins()
    held = bins >= 0
    assert held.sum() == 252 and not held[252:].any()  # the 4 fill rows hold no bin
    assert torch.equal(image[held], bins[held].float())
    tile = FrequencyTiling(n_bins=84, input_size=256)
    assert torch.equal(tile(x[:, :, :256])[0, 0, :, 0], tile.row_bins().float())
    assert torch.equal(TimeFolding(n_bins=84, input_size=64).row_bins(), torch.arange(64))  # highest bins cut
