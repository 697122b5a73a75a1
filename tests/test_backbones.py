"""Tests for s3t.backbones: registry, shapes, parameter counts and geometry validation."""

from __future__ import annotations

import pytest
import torch

from s3t.backbones import (
    BACKBONES,
    build_backbone,
    check_swin_geometry,
    cnn_bigru,
    list_backbones,
    register_backbone,
    resnet50,
    resnet_cpu,
    swin_cpu,
    swin_stage_resolutions,
    swin_t,
)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_four_variants_and_builds_by_name():
    names = list_backbones()
    assert names == sorted(names)
    assert {"cnn_bigru", "resnet50", "swin_cpu", "swin_t"} <= set(names)
    model = build_backbone("swin_cpu", drop_path_rate=0.0)
    assert model.num_features == 192


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backbone 'swin_b'; choose one of cnn_bigru, resnet50"):
        build_backbone("swin_b")


def test_registering_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("swin_t")(lambda: torch.nn.Identity())
    assert BACKBONES["swin_t"] is swin_t


def test_swin_t_matches_the_paper_configuration_without_a_forward():
    model = swin_t()
    # 27.52 M: Swin-T (embed 96, depths 2-2-6-2) with one input channel, window 8, no classifier.
    assert abs(n_params(model) - 27.5e6) < 0.1e6
    assert model.num_features == 768
    assert model.patch_embed.img_size == (256, 256)
    assert [blk.window_size for blk in model.layers[0].blocks] == [(8, 8), (8, 8)]
    # The last stage's 8x8 grid is a single window, so its blocks have no shift.
    assert model.layers[3].blocks[1].shift_size == (0, 0)
    assert model.layers[0].blocks[1].shift_size == (4, 4)


def test_swin_cpu_is_small_and_embeds_a_256_input():
    model = swin_cpu().eval()
    assert n_params(model) < 1_500_000
    x = torch.randn(2, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, model.num_features) == (2, 192)
    assert torch.isfinite(out).all()


def test_swin_cpu_width_depth_and_patch_are_arguments():
    wide = swin_cpu(embed_dim=64, depths=(2, 4, 2), patch_size=8, drop_path_rate=0.0).eval()
    assert wide.num_features == 256
    assert n_params(wide) > n_params(swin_cpu())
    x = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    assert wide.forward_features(x).shape[1:3] == (8, 8)  # patch 8: a 32 x 32 grid, halved twice
    with pytest.raises(ValueError, match="num_heads"):
        swin_cpu(depths=(2, 2, 2, 2))  # four stages need four head counts


def test_swin_cpu_backward_reaches_the_patch_embedding():
    model = swin_cpu()
    x = torch.randn(2, 1, 256, 256, generator=torch.Generator().manual_seed(1))
    model(x).pow(2).sum().backward()
    grad = model.patch_embed.proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_absolute_position_embedding_tells_bass_from_treble():
    torch.manual_seed(0)
    plain = swin_cpu(drop_path_rate=0.0).eval()
    torch.manual_seed(0)
    placed = swin_cpu(drop_path_rate=0.0, absolute_pos_embed=True).eval()
    bass = torch.zeros(1, 1, 256, 256)
    bass[..., 0:16, 0:16] = 1.0  # one patch-sized blob in the lowest rows (token row 0)
    treble = torch.zeros(1, 1, 256, 256)
    treble[..., 224:240, 0:16] = 1.0  # the same blob 14 patches higher (token row 14)
    # Without the embedding the blob's token is the same wherever it sits; with it, it is not.
    assert torch.allclose(plain.patch_embed(bass)[0, 0, 0], plain.patch_embed(treble)[0, 14, 0])
    assert not torch.allclose(placed.patch_embed(bass)[0, 0, 0], placed.patch_embed(treble)[0, 14, 0], atol=1e-3)
    assert placed.patch_embed.pos.shape == (1, 16, 16, 48)
    # The position table trains, and the rest of the network is the plain one.
    placed(bass).sum().backward()
    assert placed.patch_embed.pos.grad is not None and placed.patch_embed.pos.grad.abs().sum() > 0
    assert sum(p.numel() for p in placed.parameters()) - n_params(plain) == 16 * 16 * 48
    inter = placed.forward_intermediates(bass, intermediates_only=True)
    assert [tuple(t.shape) for t in inter] == [(1, 48, 16, 16), (1, 96, 8, 8), (1, 192, 4, 4)]


def test_swin_rejects_an_input_of_the_wrong_size():
    model = swin_cpu()
    with pytest.raises(AssertionError):  # timm's own strict input-size check
        model(torch.zeros(1, 1, 128, 128))


def test_resnet50_embeds_a_small_input():
    model = resnet50(input_size=64).eval()
    assert abs(n_params(model) - 23.5e6) < 0.1e6
    out = model(torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(2)))
    assert out.shape == (2, model.num_features) == (2, 2048)
    # Global average pooling after a ReLU: every feature is non-negative.
    assert (out >= 0).all()


def _forward_gflop(model: torch.nn.Module, size: int = 256) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(0)))
    return counter.get_total_flops() / 1e9


def test_resnet_cpu_costs_about_what_swin_cpu_costs_and_embeds_by_stage():
    from s3t.model import Encoder, ModelConfig

    cnn, swin = resnet_cpu(), swin_cpu()
    ratio = _forward_gflop(cnn) / _forward_gflop(swin)
    assert 0.7 < ratio < 1.0, ratio  # the control is no bigger than the Swin it is compared with
    assert n_params(cnn) < n_params(swin) and cnn.num_features == 64
    assert "resnet_cpu" in list_backbones()
    encoder = Encoder(ModelConfig(backbone="resnet_cpu", embed_pooling="stages")).eval()
    x = torch.randn(3, 84, encoder.frames, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        emb = encoder.embed(x)
    # Mean and std of every stage: the stem (width / 2 * 2 = 8 channels) and four stages 8-64.
    assert emb.shape == (3, encoder.embedding_dim) == (3, 2 * (8 + 8 + 16 + 32 + 64))
    assert torch.isfinite(emb).all() and not torch.allclose(emb[0], emb[1])


@pytest.mark.parametrize("width", [0, 7, 2.0, True])
def test_resnet_cpu_rejects_a_width_its_stem_cannot_halve(width):
    with pytest.raises(ValueError, match="width must be an even integer"):
        resnet_cpu(width=width)


def test_resnet50_rejects_an_input_below_its_stride():
    with pytest.raises(ValueError, match="use input_size >= 32"):
        resnet50(input_size=16)


def test_cnn_bigru_pools_frequency_and_keeps_time():
    model = cnn_bigru(input_size=64, channels=(8, 16, 16), time_pool_blocks=2, gru_hidden=12).eval()
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    seq = model.forward_sequence(x)
    assert seq.shape == (2, 64 // 4, 2 * 12)  # 64 time steps halved twice; forward + backward GRU
    out = model(x)
    assert out.shape == (2, model.num_features) == (2, 4 * 12)
    # The embedding is the time mean and the time max of the GRU outputs.
    torch.testing.assert_close(out[:, :24], seq.mean(dim=1))
    torch.testing.assert_close(out[:, 24:], seq.amax(dim=1))


def test_cnn_bigru_default_embeds_a_256_input():
    model = cnn_bigru().eval()
    out = model(torch.randn(2, 1, 256, 256, generator=torch.Generator().manual_seed(4)))
    assert out.shape == (2, 1024)


def test_cnn_bigru_output_depends_on_time_order():
    # A bidirectional GRU over time is not a bag of frames: reversing time changes the embedding.
    model = cnn_bigru(input_size=32, channels=(4, 8), gru_hidden=6).eval()
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(model(x), model(x.flip(-1)), atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_size=8), "input_size 8 is too small for 4 blocks"),
        (dict(time_pool_blocks=5), "time_pool_blocks must be between 0 and the number of blocks"),
        (dict(channels=()), "channels must be a non-empty sequence"),
        (dict(gru_hidden=0), "gru_hidden and gru_layers must be >= 1"),
    ],
)
def test_cnn_bigru_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cnn_bigru(**kwargs)


def test_swin_stage_resolutions_halve_the_patch_grid():
    assert swin_stage_resolutions(256, 4, 4) == (64, 32, 16, 8)
    assert swin_stage_resolutions(256, 8, 3) == (32, 16, 8)


def test_window_that_does_not_tile_a_stage_is_rejected_with_a_fix():
    with pytest.raises(ValueError) as err:
        swin_t(window_size=7)
    assert str(err.value) == (
        "window_size 7 does not divide the 64x64 stage-1 grid of input 256 with patch 4; "
        "use window_size 8 or input_size 224"
    )
    # Both suggested fixes are valid geometries.
    check_swin_geometry(256, 4, 8, 4)
    check_swin_geometry(224, 4, 7, 4)


def test_input_not_divisible_by_the_total_stride_is_rejected():
    with pytest.raises(ValueError, match=r"input_size 250 is not divisible by .* = 32 .*use input_size 256"):
        swin_t(input_size=250)


def test_stage_grid_smaller_than_the_window_is_allowed():
    # 128 / 4 = 32 -> stages 32, 16, 8, 4: the last 4x4 grid is one (clipped) window.
    check_swin_geometry(128, 4, 8, 4)
    with pytest.raises(ValueError, match="stage-1 grid"):
        check_swin_geometry(128, 4, 12, 4)


def test_swin_cpu_geometry_errors_mention_its_patch_size():
    with pytest.raises(ValueError, match="16x16 stage-1 grid of input 256 with patch 16"):
        swin_cpu(window_size=7)
