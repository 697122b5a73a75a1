"""Tests for s3t.augment: drawn values stay in the paper's ranges (2.3), rates match p,
and each transform does exactly what its params say."""

from __future__ import annotations

import math

import pytest
import torch

from s3t.augment import (
    PIPELINE_ORDER,
    MusicAugment,
    draw_mix,
    frequency_mask,
    log_mix,
    random_multi_crop,
    random_shift,
    time_mask,
    time_warp,
)

N_DRAWS = 1000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_rate(applied: torch.Tensor, p: float) -> None:
    """Binomial check: |rate - p| < 4 standard errors."""
    n = applied.numel()
    rate = applied.float().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n), (rate, p)


def positive_batch(batch: int, bins: int, frames: int, seed: int = 1) -> torch.Tensor:
    """Values in [1, 2): never equal to a fill of 0 or -1."""
    return torch.rand(batch, bins, frames, generator=gen(seed)) + 1.0


def segment_mask(starts: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """Reference mask built with an explicit loop over segments: (B, N) -> (B, size) bool."""
    mask = torch.zeros(starts.shape[0], size, dtype=torch.bool)
    idx = torch.arange(size)
    for k in range(starts.shape[1]):
        mask |= (idx >= starts[:, k : k + 1]) & (idx < (starts[:, k : k + 1] + widths[:, k : k + 1]))
    return mask


# ------------------------------------------------------------------------- multi-crop


def test_multi_crop_draws_in_range_and_reads_only_its_window():
    bins, frames, out_frames = 3, 100, 16
    lengths = torch.randint(20, frames + 1, (N_DRAWS,), generator=gen(5))
    t = torch.arange(frames, dtype=torch.float32)
    f = torch.arange(bins, dtype=torch.float32).unsqueeze(1)
    x = (1000.0 * f + t).expand(N_DRAWS, bins, frames).clone()
    x[t.expand(N_DRAWS, frames).unsqueeze(1).expand_as(x) >= lengths.view(-1, 1, 1)] = 1e6  # padding sentinel

    crops, params = random_multi_crop(x, lengths, out_frames, generator=gen())

    assert len(crops) == 2 and all(c.shape == (N_DRAWS, bins, out_frames) for c in crops)
    assert params["applied"].all()
    ratio, start, length = params["ratio"], params["start"], params["length"]
    assert ratio.shape == start.shape == length.shape == (N_DRAWS, 2)
    assert ratio.min() >= 0.1 and ratio.max() <= 0.9
    assert ratio.min() < 0.15 and ratio.max() > 0.85  # the whole range is used
    expected_length = torch.round(lengths.unsqueeze(1).float() * ratio).long().clamp(min=1)
    assert torch.equal(length, expected_length)
    assert (start >= 0).all() and (start + length <= lengths.unsqueeze(1)).all()
    for i, crop in enumerate(crops):
        time_values = crop - 1000.0 * f  # the ramp value = source frame index
        first = start[:, i].view(-1, 1, 1).float()
        last = (start[:, i] + length[:, i] - 1).view(-1, 1, 1).float()
        assert (time_values >= first - 1e-3).all() and (time_values <= last + 1e-3).all()
        # linear resize with aligned corners: evenly spaced frames from first to last
        steps = torch.arange(out_frames, dtype=torch.float32) / (out_frames - 1)
        torch.testing.assert_close(time_values, (first + steps * (last - first)).expand_as(crop), atol=1e-3, rtol=0)


def test_multi_crop_single_frame_output_is_the_crop_centre():
    x = torch.arange(50, dtype=torch.float32).expand(4, 2, 50).clone()
    (crop,), params = random_multi_crop(x, None, 1, n_crops=1, generator=gen())
    centre = params["start"][:, 0] + (params["length"][:, 0] - 1) / 2
    torch.testing.assert_close(crop[:, 0, 0], centre.float())


def test_multi_crop_rejects_bad_lengths_and_ranges():
    x = torch.zeros(2, 3, 10)
    with pytest.raises(ValueError, match="length"):
        random_multi_crop(x, torch.tensor([0, 5]), 4, generator=gen())
    with pytest.raises(ValueError, match="length"):
        random_multi_crop(x, torch.tensor([11, 5]), 4, generator=gen())
    with pytest.raises(ValueError, match="ratio_range"):
        random_multi_crop(x, None, 4, ratio_range=(0.0, 0.5), generator=gen())
    with pytest.raises(ValueError, match="x must be"):
        random_multi_crop(torch.zeros(3, 10), None, 4, generator=gen())


# ------------------------------------------------------------------------- frequency mask


def test_frequency_mask_draws_rate_and_masked_bins():
    bins, frames = 84, 6
    x = positive_batch(N_DRAWS, bins, frames)
    out, params = frequency_mask(x, generator=gen())

    applied = params["applied"]
    assert_rate(applied, 0.5)
    a = applied
    n_drawn, n, widths, starts, total = (params[k] for k in ("n_drawn", "n", "widths", "starts", "total"))
    assert widths.shape == starts.shape == (N_DRAWS, 5)
    assert set(n_drawn[a].tolist()) == {1, 2, 3, 4, 5}
    assert (n[a] >= 1).all() and (n <= n_drawn).all()
    kept = torch.arange(5) < n.unsqueeze(1)
    assert torch.equal(widths > 0, kept)  # kept bands are a prefix, the rest padded with 0
    assert widths[kept].min() == 5 and widths[kept].max() == 30
    assert (starts[kept] + widths[kept] <= bins).all() and (starts >= 0).all()
    assert torch.equal(total, widths.sum(1)) and total.max() <= math.floor(0.4 * bins)
    assert (n[a] < n_drawn[a]).any()  # the cap is binding for some draws
    assert (n[~a] == 0).all() and (total[~a] == 0).all()

    mask = segment_mask(starts, widths, bins).unsqueeze(2).expand_as(x)
    assert (out[mask] == 0.0).all()
    assert torch.equal(out[~mask], x[~mask])
    assert ((out == 0.0).all(dim=2).sum(dim=1) <= total).all()  # masked rows <= total width
    assert out.shape == x.shape and out.device == x.device


def test_frequency_mask_custom_cap_and_fill():
    x = positive_batch(N_DRAWS, 40, 4)
    out, params = frequency_mask(x, p=1.0, width_range=(2, 8), max_total=10, fill=-1.0, generator=gen())
    assert params["applied"].all() and params["total"].max() <= 10
    mask = segment_mask(params["starts"], params["widths"], 40).unsqueeze(2).expand_as(x)
    assert (out[mask] == -1.0).all() and torch.equal(out[~mask], x[~mask])


def test_frequency_mask_rejects_impossible_settings():
    x = torch.zeros(2, 20, 4)
    with pytest.raises(ValueError, match="exceeds the 20 frequency bins"):
        frequency_mask(x, generator=gen())
    with pytest.raises(ValueError, match="max_total"):
        frequency_mask(x, width_range=(5, 10), max_total=4, generator=gen())
    with pytest.raises(ValueError, match="probability"):
        frequency_mask(x, p=1.5, width_range=(1, 2), generator=gen())
    with pytest.raises(ValueError, match="width_range"):
        frequency_mask(x, width_range=(8, 3), generator=gen())


# ------------------------------------------------------------------------- time mask


def test_time_mask_draws_rate_and_masked_frames_respect_lengths():
    bins, frames = 2, 200
    lengths = torch.randint(50, frames + 1, (N_DRAWS,), generator=gen(7))
    x = positive_batch(N_DRAWS, bins, frames)
    out, params = time_mask(x, lengths, generator=gen())

    a = params["applied"]
    assert_rate(a, 0.5)
    n_drawn, n, ratios, spans, starts, total = (
        params[k] for k in ("n_drawn", "n", "ratios", "lengths", "starts", "total")
    )
    assert spans.shape == ratios.shape == starts.shape == (N_DRAWS, 10)
    assert set(n_drawn[a].tolist()) == set(range(1, 11))
    assert (n[a] >= 1).all() and (n <= n_drawn).all() and (n[~a] == 0).all()
    kept = torch.arange(10) < n.unsqueeze(1)
    assert ratios[kept].min() >= 0.01 and ratios[kept].max() <= 0.2
    assert (ratios[~kept] == 0).all() and (spans[~kept] == 0).all()
    assert torch.equal(spans[kept], torch.round(lengths.unsqueeze(1).expand_as(ratios)[kept] * ratios[kept]).long())
    assert (starts + spans <= lengths.unsqueeze(1)).all()  # padding frames are never masked
    assert torch.equal(total, spans.sum(1))
    assert (total.float() <= 0.4 * lengths.float()).all()
    assert (n[a] < n_drawn[a]).any()  # the 0.4 * T cap is binding for some draws

    mask = segment_mask(starts, spans, frames).unsqueeze(1).expand_as(x)
    assert (out[mask] == 0.0).all()
    assert torch.equal(out[~mask], x[~mask])


def test_time_mask_without_lengths_uses_all_frames():
    x = positive_batch(N_DRAWS, 2, 50)
    out, params = time_mask(x, p=1.0, fill=-1.0, generator=gen())
    assert params["total"].max() <= 20 and (params["starts"] + params["lengths"] <= 50).all()
    mask = segment_mask(params["starts"], params["lengths"], 50).unsqueeze(1).expand_as(x)
    assert (out[mask] == -1.0).all() and torch.equal(out[~mask], x[~mask])


# ------------------------------------------------------------------------- time warp


def test_time_warp_draws_rate_and_piecewise_linear_map():
    bins, frames, W = 2, 64, 10
    ramp = torch.arange(frames, dtype=torch.float32)
    x = ramp.expand(N_DRAWS, bins, frames).clone()
    out, params = time_warp(x, generator=gen())

    a = params["applied"]
    assert_rate(a, 0.4)
    c, d = params["centre"], params["distance"]
    assert (c[a] >= W).all() and (c[a] < frames - 1 - W).all()
    assert (d[a].abs() < W).all() and (d[a] > 0).any() and (d[a] < 0).any()
    assert d[a].abs().max() > 0.9 * W and c[a].min() < W + 2 and c[a].max() > frames - 3 - W
    assert (c[~a] == 0).all() and (d[~a] == 0).all()
    assert out.shape == x.shape
    assert torch.equal(out[:, :, 0], x[:, :, 0]) and torch.equal(out[:, :, -1], x[:, :, -1])
    assert torch.equal(out[~a], x[~a])

    # On a ramp the output is the source position: c goes to c + d, linear on both sides.
    end = frames - 1
    cc, aa = c[a].unsqueeze(1), (c[a] + d[a]).unsqueeze(1)
    expected = torch.where(ramp <= aa, ramp * cc / aa, end - (end - ramp) * (end - cc) / (end - aa))
    torch.testing.assert_close(out[a][:, 0], expected, atol=1e-3, rtol=0)
    right, left = d[a] > 0, d[a] < 0
    assert (out[a][right] <= ramp + 1e-4).all()  # content moved later: each frame reads an earlier one
    assert (out[a][left] >= ramp - 1e-4).all()


def test_time_warp_skips_when_too_short():
    x = positive_batch(50, 2, 21)
    out, params = time_warp(x, p=1.0, W=10, generator=gen())
    assert not params["applied"].any() and torch.equal(out, x)
    out, params = time_warp(positive_batch(50, 2, 22), p=1.0, W=10, generator=gen())
    assert params["applied"].all()


# ------------------------------------------------------------------------- random shift


def test_random_shift_draws_rate_and_exact_displacement():
    bins, frames = 20, 30
    f = torch.arange(bins, dtype=torch.float32).view(1, bins, 1)
    t = torch.arange(frames, dtype=torch.float32).view(1, 1, frames)
    x = (100.0 * f + t + 1.0).expand(N_DRAWS, bins, frames).clone()  # unique, positive cells
    out, params = random_shift(x, fill=-1.0, generator=gen())

    a = params["applied"]
    assert_rate(a, 0.4)
    axis, steps = params["axis"], params["steps"]
    assert set(axis[a].tolist()) == {0, 1} and (axis[~a] == -1).all() and (steps[~a] == 0).all()
    assert_rate(axis[a] == 1, 0.5)
    assert set(steps[a].abs().tolist()) == set(range(1, 11)) and (steps[a] < 0).any() and (steps[a] > 0).any()
    assert torch.equal(out[~a], x[~a])

    for b in torch.nonzero(a).flatten().tolist():
        s, dim = int(steps[b]), 1 + int(axis[b])
        size = x.shape[dim]
        expected = torch.full_like(x[b], -1.0)
        if s > 0:
            expected.narrow(dim - 1, s, size - s).copy_(x[b].narrow(dim - 1, 0, size - s))
        else:
            expected.narrow(dim - 1, 0, size + s).copy_(x[b].narrow(dim - 1, -s, size + s))
        assert torch.equal(out[b], expected), (b, s, dim)


def test_random_shift_moves_a_delta_by_exactly_s_cells():
    x = torch.zeros(N_DRAWS, 40, 40)
    x[:, 20, 20] = 1.0
    out, params = random_shift(x, p=1.0, generator=gen())
    peak = out.flatten(1).argmax(1)
    peak_f, peak_t = peak // 40, peak % 40
    s, axis = params["steps"], params["axis"]
    assert torch.equal(peak_f, 20 + torch.where(axis == 0, s, 0))
    assert torch.equal(peak_t, 20 + torch.where(axis == 1, s, 0))
    assert (out.sum((1, 2)) == 1.0).all()


# ------------------------------------------------------------------------- module


def test_music_augment_shapes_keys_and_rates():
    bins, frames, out_frames = 40, 120, 48
    aug = MusicAugment(out_frames, freq_mask_width_range=(2, 10))
    lengths = torch.randint(30, frames + 1, (N_DRAWS,), generator=gen(3))
    x = positive_batch(N_DRAWS, bins, frames)
    x_q, x_k, params = aug(x, lengths, gen())

    assert x_q.shape == x_k.shape == (N_DRAWS, bins, out_frames)
    assert PIPELINE_ORDER == ("freq_mask", "time_mask", "time_warp", "shift")
    per_op = {
        "freq_mask": {"applied", "n_drawn", "n", "widths", "starts", "total"},
        "time_mask": {"applied", "n_drawn", "n", "ratios", "lengths", "starts", "total"},
        "time_warp": {"applied", "centre", "distance"},
        "shift": {"applied", "axis", "steps"},
    }
    expected = {f"crop.{k}" for k in ("applied", "ratio", "start", "length")}
    expected |= {f"{v}.{op}.{k}" for v in ("q", "k") for op, keys in per_op.items() for k in keys}
    assert set(params) == expected
    for view in ("q", "k"):
        for op, p in (("freq_mask", 0.5), ("time_mask", 0.5), ("time_warp", 0.4), ("shift", 0.4)):
            assert_rate(params[f"{view}.{op}.applied"], p)
    assert (params["q.time_mask.total"] <= 0.4 * out_frames).all()
    assert not torch.equal(params["q.freq_mask.applied"], params["k.freq_mask.applied"])  # independent draws


def test_music_augment_with_all_p_zero_returns_the_two_crops():
    x = positive_batch(8, 10, 60)
    aug = MusicAugment(20, freq_mask_p=0.0, time_mask_p=0.0, time_warp_p=0.0, shift_p=0.0, freq_mask_width_range=(1, 5))
    x_q, x_k, _ = aug(x, None, gen(4))
    (c_q, c_k), _ = random_multi_crop(x, None, 20, generator=gen(4))  # the crop draws come first
    assert torch.equal(x_q, c_q) and torch.equal(x_k, c_k)


def test_music_augment_freq_mask_only_fills_whole_rows_of_each_view():
    x = positive_batch(N_DRAWS, 30, 40)
    aug = MusicAugment(16, freq_mask_p=1.0, time_mask_p=0.0, time_warp_p=0.0, shift_p=0.0, freq_mask_width_range=(2, 6))
    x_q, x_k, params = aug(x, None, gen())
    for view, out in (("q", x_q), ("k", x_k)):
        mask = segment_mask(params[f"{view}.freq_mask.starts"], params[f"{view}.freq_mask.widths"], 30)
        assert torch.equal((out == 0.0).all(dim=2), mask)


def test_music_augment_is_reproducible_and_seed_dependent():
    x = positive_batch(16, 30, 80)
    aug = MusicAugment(32, freq_mask_width_range=(2, 8))
    q1, k1, p1 = aug(x, None, gen(11))
    q2, k2, p2 = aug(x, None, gen(11))
    q3, k3, _ = aug(x, None, gen(12))
    assert torch.equal(q1, q2) and torch.equal(k1, k2)
    assert all(torch.equal(p1[key], p2[key]) for key in p1)
    assert not torch.equal(q1, q3) and not torch.equal(k1, k3)
    assert q1.device == x.device and all(v.device == x.device for v in p1.values())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crop_ratio_range": (0.0, 0.9)}, "crop_ratio_range"),
        ({"crop_ratio_range": (0.5, 1.2)}, "crop_ratio_range"),
        ({"freq_mask_p": -0.1}, "freq_mask_p"),
        ({"shift_p": 1.1}, "shift_p"),
        ({"freq_mask_width_range": (30, 5)}, "freq_mask_width_range"),
        ({"freq_mask_n_range": (0, 5)}, "freq_mask_n_range"),
        ({"freq_mask_max_total": 3}, "freq_mask_max_total"),
        ({"time_mask_ratio_range": (0.3, 0.2)}, "time_mask_ratio_range"),
        ({"time_mask_max_total_ratio": 0.001}, "time_mask_max_total_ratio"),
        ({"time_warp_W": -1}, "time_warp_W"),
        ({"shift_steps_range": (0, 10)}, "shift_steps_range"),
        ({"mix_p": 1.5}, "mix_p"),
        ({"mix_max_ratio": 1.0}, "mix_max_ratio"),
        ({"mix_max_ratio": 0.0}, "mix_max_ratio"),
    ],
)
def test_music_augment_validates_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MusicAugment(64, **kwargs)
    with pytest.raises(ValueError, match="out_frames"):
        MusicAugment(0)


@pytest.mark.gpu
def test_ops_run_on_the_device_of_x():
    x = positive_batch(64, 84, 300).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    x_q, x_k, params = MusicAugment(128)(x, None, g)
    assert x_q.is_cuda and x_k.is_cuda and all(v.is_cuda for v in params.values())
    with pytest.raises(ValueError, match="generator"):
        frequency_mask(x, generator=gen())


@pytest.mark.parametrize("shift_p", [0.8, 0.0])  # 0.0: the CPU scale's default, which skips the shift's gather
def test_music_augment_equals_the_four_transforms_applied_one_by_one(shift_p):
    """The module fuses the two masks into one fill and the warp and shift into one resampling;
    with the same draws its views equal the public functions applied in PIPELINE_ORDER."""
    x = positive_batch(N_DRAWS, 40, 150)
    lengths = torch.randint(60, 151, (N_DRAWS,), generator=gen(8))
    settings = dict(freq_mask_width_range=(2, 10), time_warp_p=0.8, shift_p=shift_p)
    x_q, x_k, params = MusicAugment(64, **settings)(x, lengths, gen(9))

    g = gen(9)
    crops, _ = random_multi_crop(x, lengths, 64, generator=g)
    for view, (crop, out) in zip(("q", "k"), zip(crops, (x_q, x_k))):
        expected, _ = frequency_mask(crop, width_range=(2, 10), generator=g)
        expected, _ = time_mask(expected, generator=g)
        expected, warp = time_warp(expected, p=0.8, generator=g)
        expected, shift = random_shift(expected, p=shift_p, generator=g)
        assert torch.equal(warp["centre"], params[f"{view}.time_warp.centre"])
        assert torch.equal(shift["steps"], params[f"{view}.shift.steps"])
        assert warp["applied"].any()
        if shift_p:
            assert (shift["axis"] == 0).any() and (shift["axis"] == 1).any()
        else:
            assert not shift["applied"].any()
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------- mixing (not in the paper)


def test_log_mix_adds_the_two_magnitudes():
    x = torch.randn(4, 6, 9, generator=gen(20))
    partner = torch.tensor([1, 2, 3, 0])
    ratio = torch.tensor([0.0, 0.1, 0.25, 0.4])
    out = log_mix(x, partner, ratio)
    expected = torch.log((1 - ratio).view(-1, 1, 1) * x.exp() + ratio.view(-1, 1, 1) * x[partner].exp())
    torch.testing.assert_close(out, expected)
    assert torch.equal(out[0], x[0])  # ratio 0 leaves the item as it was
    # Mixed magnitudes lie between the two clips' magnitudes, cell by cell.
    lo, hi = torch.minimum(x, x[partner]), torch.maximum(x, x[partner])
    assert bool(((out >= lo - 1e-5) & (out <= hi + 1e-5)).all())


def test_draw_mix_rate_partner_and_ratio():
    x = torch.zeros(N_DRAWS, 3, 5)
    drawn = draw_mix(x, p=0.3, max_ratio=0.25, generator=gen(21))
    applied, partner, ratio = drawn["applied"], drawn["partner"], drawn["ratio"]
    assert_rate(applied, 0.3)
    own = torch.arange(N_DRAWS)
    assert bool((partner[applied] != own[applied]).all()) and torch.equal(partner[~applied], own[~applied])
    assert bool(((ratio[applied] >= 0) & (ratio[applied] < 0.25)).all()) and not ratio[~applied].any()
    assert ratio[applied].mean().item() == pytest.approx(0.125, abs=0.02)  # uniform on [0, 0.25)
    # Partners spread over the batch rather than always the neighbour.
    assert len(set(((partner - own) % N_DRAWS)[applied].tolist())) > 100
    one = draw_mix(torch.zeros(1, 3, 5), p=1.0, generator=gen(22))
    assert not one["applied"].any() and one["partner"].tolist() == [0]


def test_music_augment_mixing_off_draws_as_before_and_on_mixes_each_view():
    x = positive_batch(64, 12, 80)
    base = dict(freq_mask_width_range=(1, 4), time_warp_p=0.5)
    q0, k0, _ = MusicAugment(32, **base)(x, None, gen(23))
    q1, k1, p1 = MusicAugment(32, mix_p=0.0, **base)(x, None, gen(23))
    assert torch.equal(q0, q1) and torch.equal(k0, k1) and not any(key.startswith(("q.mix", "k.mix")) for key in p1)

    only_mix = dict(freq_mask_p=0.0, time_mask_p=0.0, time_warp_p=0.0, shift_p=0.0, freq_mask_width_range=(1, 4))
    x_q, x_k, params = MusicAugment(32, mix_p=1.0, mix_max_ratio=0.3, **only_mix)(x, None, gen(24))
    (c_q, c_k), _ = random_multi_crop(x, None, 32, generator=gen(24))  # the crop draws come first
    for view, crop, out in (("q", c_q, x_q), ("k", c_k, x_k)):
        assert params[f"{view}.mix.applied"].all()
        expected = log_mix(crop, params[f"{view}.mix.partner"], params[f"{view}.mix.ratio"])
        torch.testing.assert_close(out, expected)
        assert not torch.equal(out, crop)
    # The two views draw their partners independently.
    assert not torch.equal(params["q.mix.partner"], params["k.mix.partner"])
