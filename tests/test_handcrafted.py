import pytest
import torch

from s3t.handcrafted import cqt_statistics, handcrafted_embeddings


def test_statistics_are_mean_std_and_mean_absolute_frame_difference_per_bin():
    spec = torch.tensor([[1.0, 3.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0]])  # (F=2, T=4)
    stats = cqt_statistics(spec)
    assert stats.shape == (6,)
    assert torch.allclose(stats, torch.tensor([2.0, 2.0, 1.0, 0.0, 2.0, 0.0]))


def test_a_clip_louder_in_one_bin_moves_only_that_bins_mean():
    torch.manual_seed(0)
    spec = torch.randn(84, 50)
    louder = spec.clone()
    louder[10] += 3.0
    delta = cqt_statistics(louder) - cqt_statistics(spec)
    assert torch.isclose(delta[10], torch.tensor(3.0)) and delta.abs().sum() == pytest.approx(3.0, abs=1e-4)


def test_single_frame_and_bad_shapes():
    assert torch.equal(cqt_statistics(torch.ones(3, 1))[6:], torch.zeros(3))
    with pytest.raises(ValueError):
        cqt_statistics(torch.ones(3))
    with pytest.raises(ValueError):
        handcrafted_embeddings([])


def test_embeddings_stack_clips_of_different_lengths():
    seen = []
    out = handcrafted_embeddings([torch.randn(5, 7), torch.randn(5, 9)], on_clip=seen.append)
    assert out.shape == (2, 15) and seen == [1, 2]
