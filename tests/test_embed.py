import pytest
import torch

from s3t.cqt import CQTConfig
from s3t.embed import SQUEEZE_LIMIT, clip_views, embed_files, embed_spectrograms, embed_windows, file_windows, window_bounds
from s3t.model import Encoder, ModelConfig, standardize


def test_clip_views_cover_the_clip_in_order():
    spec = torch.arange(12.0).repeat(3, 1)  # (F=3, T=12) time ramp
    views = clip_views(spec, frames=6, num_segments=2)
    assert views.shape == (2, 3, 6)
    assert views[0].max() <= 5.5 and views[1].min() >= 5.5  # first half, then second half


def test_segment_embeddings_are_mean_pooled():
    torch.manual_seed(0)
    encoder = Encoder(ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32, cqt=CQTConfig()))
    encoder.eval()
    clip = torch.randn(84, 64)
    pooled = embed_spectrograms(encoder, [clip], num_segments=2)
    with torch.no_grad():
        views = clip_views(standardize(clip[None])[0], encoder.frames, 2)
        expected = encoder(views).mean(0, keepdim=True)
    assert torch.allclose(pooled, expected, atol=1e-6)
    assert embed_spectrograms(encoder, [clip, clip * 2 + 1], batch_size=1).shape == (2, 8)


def test_standardize_ignores_padding():
    x = torch.zeros(1, 2, 6)
    x[0, :, :4] = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    out = standardize(x, torch.tensor([4]))
    assert torch.allclose(out[0, :, :4].mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(out[0, :, :4].std(unbiased=False), torch.tensor(1.0), atol=1e-3)
    assert torch.equal(out[0, :, 4:], torch.zeros(2, 2))


def test_embed_labeled_records_labels_and_detects_multilabel():
    from s3t.embed import embed_labeled

    torch.manual_seed(0)
    encoder = Encoder(ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32, cqt=CQTConfig()))
    clips = [torch.randn(84, 40) for _ in range(3)]
    single = embed_labeled(encoder, clips, ids=["a", "b", "c"], labels=[("rock",), ("jazz",), ("rock",)],
                           splits=["train", "valid", "test"], method="s3t")
    assert single.label_set == ["jazz", "rock"] and not single.multilabel and single.embeddings.shape == (3, 8)
    tags = embed_labeled(encoder, clips, ids=["a", "b", "c"], labels=[("x", "y"), (), ("y",)],
                         splits=["train", "valid", "test"], method="s3t")
    assert tags.multilabel and tags.label_set == ["x", "y"]


def test_stage_pooling_concatenates_mean_and_std_of_every_stage():
    torch.manual_seed(0)
    config = ModelConfig(backbone="swin_cpu", preprocessor="time_folding", input_size=256, cqt=CQTConfig(),
                         embed_pooling="stages", embed_segments=2)
    encoder = Encoder(config).eval()
    assert encoder.embedding_dim == 2 * (48 + 96 + 192)
    clip = torch.randn(84, 900)
    emb = embed_spectrograms(encoder, [clip])  # the config's 2 segments
    with torch.no_grad():
        views = clip_views(standardize(clip[None])[0], encoder.frames, 2)
        maps = encoder.backbone.forward_intermediates(encoder.preprocessor(views), intermediates_only=True)
    last = maps[-1]
    expected_last_std = last.std((2, 3), unbiased=False).mean(0)
    assert emb.shape == (1, encoder.embedding_dim)
    assert torch.allclose(emb[0, -192:], expected_last_std, atol=1e-5)


def test_embedding_settings_are_validated():
    import pytest

    with pytest.raises(ValueError, match="embed_pooling"):
        ModelConfig(embed_pooling="max")
    with pytest.raises(ValueError, match="embed_segments"):
        ModelConfig(embed_segments=0)


def test_stage_pooling_on_a_backbone_without_stages_says_what_to_change():
    import pytest

    encoder = Encoder(ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32,
                                  embed_pooling="stages"))
    with pytest.raises(ValueError, match="embed_pooling 'final'"):
        encoder.embedding_dim
    with pytest.raises(ValueError, match="embed_pooling 'final'"):
        encoder.embed(torch.randn(1, 84, encoder.frames))


def test_window_bounds_tile_the_clip_with_whole_windows_at_exact_hops():
    fps = 10.0  # frames per second: 1 frame = 0.1 s
    assert window_bounds(95, fps, None, None) == [(0, 95)]
    assert window_bounds(100, fps, 4.0, 2.0) == [(0, 40), (20, 60), (40, 80), (60, 100)]
    # 10.5 s in 4 s windows: 2.5 s left after the last whole window (> half a hop): one more ends at the end;
    # 9.5 s leaves 1.5 s (< half a hop), which no extra window covers.
    assert window_bounds(105, fps, 4.0, None) == [(0, 40), (40, 80), (65, 105)]
    assert window_bounds(95, fps, 4.0, None) == [(0, 40), (40, 80)]
    assert window_bounds(30, fps, 4.0, 1.0) == [(0, 30)]  # shorter than one window: one row, the whole clip
    starts = [a for a, _ in window_bounds(10_000, 43.066, 10.0, 5.0)]
    assert all(abs(a / 43.066 - 5.0 * k) <= 0.5 / 43.066 for k, a in enumerate(starts))  # no drift


def test_window_bounds_reject_settings_that_make_no_windows():
    for window, hop in ((0.0, None), (4.0, -1.0), (0.01, None), (None, 2.0)):
        with pytest.raises(ValueError):
            window_bounds(100, 10.0, window, hop)


def test_embed_windows_embeds_each_window_as_its_own_clip():
    torch.manual_seed(0)
    encoder = Encoder(ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32, cqt=CQTConfig()))
    fps = encoder.config.cqt.frames_per_second
    clips = [torch.randn(84, round(3 * fps)), torch.randn(84, round(1 * fps))]  # 3 s and 1 s
    out = embed_windows(encoder, clips, window_s=1.0, hop_s=1.0)
    assert out.clip == [0, 0, 0, 1] and out.embeddings.shape == (4, 8)
    assert out.start_s[:3] == pytest.approx([0.0, 1.0, 2.0], abs=0.03) and out.end_s[2] == pytest.approx(3.0, abs=0.03)
    second = round(fps)
    alone = embed_spectrograms(encoder, [clips[0][:, second : 2 * second]])
    assert torch.allclose(out.embeddings[1], alone[0], atol=1e-5)
    whole = embed_windows(encoder, clips)
    assert torch.allclose(whole.embeddings, embed_spectrograms(encoder, clips), atol=1e-6) and whole.clip == [0, 1]


def test_band_weights_share_each_octave_between_the_map_rows_that_cover_it():
    from s3t.model import band_weights

    row_bins = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, -1, -1, -1, -1])  # two folds of 4 bins, then 4 fill rows
    w = band_weights(row_bins, rows=6, band_bins=2, n_bands=2)  # each map row covers 2 input rows
    assert torch.allclose(w, torch.tensor([[0.5, 0.0], [0.0, 0.5], [0.5, 0.0], [0.0, 0.5], [0.0, 0.0], [0.0, 0.0]]))
    coarse = band_weights(row_bins, rows=2, band_bins=2, n_bands=3)  # rows straddle bands; band 2 is empty
    assert torch.allclose(coarse, torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 0.0]]))
    with pytest.raises(ValueError, match="does not tile"):
        band_weights(row_bins, rows=5, band_bins=2, n_bands=2)
    with pytest.raises(ValueError, match="beyond"):
        band_weights(row_bins, rows=6, band_bins=1, n_bands=2)


def test_band_pooling_keeps_where_on_the_frequency_axis_a_pattern_sits():
    from s3t.model import band_moments

    low = torch.zeros(1, 1, 4, 3)
    low[0, 0, 0] = torch.tensor([1.0, 2.0, 3.0])  # a pattern in the lowest map row only
    high = low.flip(2)  # the same pattern in the highest row
    weights = torch.eye(4)  # one band per row
    a, b = band_moments(low, weights), band_moments(high, weights)
    assert a.shape == (1, 8)
    assert torch.allclose(a[0, :4], torch.tensor([2.0, 0.0, 0.0, 0.0]))  # means per band
    assert torch.allclose(a[0, 4], torch.tensor([2.0 / 3.0]).sqrt())  # population std over time
    assert not torch.allclose(a, b)  # stage pooling could not tell these apart
    assert torch.allclose(low.mean((2, 3)), high.mean((2, 3)))


def test_band_pooling_embeds_every_stage_per_octave():
    torch.manual_seed(0)
    config = ModelConfig(backbone="swin_cpu", preprocessor="time_folding", input_size=256, cqt=CQTConfig(),
                         embed_pooling="bands")
    encoder = Encoder(config).eval()
    assert encoder.n_bands == 7 and encoder.embedding_dim == 2 * 7 * (48 + 96 + 192)
    clip = torch.randn(84, 900)
    emb = embed_spectrograms(encoder, [clip])
    assert emb.shape == (1, encoder.embedding_dim) and torch.isfinite(emb).all()
    # Octaves are the same size (36 of the 252 music rows each), so the mean of a channel's 7 band
    # means weights every map row by the music rows it covers: 16 for rows 0-14 (patch 16), 12 for
    # row 15, whose last 4 input rows are the fill.
    first_means = emb[0, : 48 * 7].view(48, 7)
    with torch.no_grad():
        view = clip_views(standardize(clip[None])[0], encoder.frames, 1)
        first = encoder.backbone.forward_intermediates(encoder.preprocessor(view), intermediates_only=True)[0]
    row_means = first[0].mean(2)  # (48, 16)
    rows = torch.tensor([16.0] * 15 + [12.0])
    assert torch.allclose(first_means.mean(1), (row_means * rows).sum(1) / 252, atol=1e-4)


def test_a_four_minute_file_is_the_mean_of_its_thirty_second_windows():
    torch.manual_seed(0)
    encoder = Encoder(ModelConfig(backbone="tiny_test", preprocessor="frequency_tiling", input_size=32, cqt=CQTConfig()))
    encoder.eval()
    fps = encoder.config.cqt.frames_per_second
    song = torch.randn(84, round(240 * fps))  # 4 minutes
    clip = torch.randn(84, round(30 * fps))  # one training clip: whole, as before
    got = embed_files(encoder, [song, clip], 30.0)
    windows = [song[:, a : a + round(30 * fps)] for a in (round(k * 30 * fps) for k in range(8))]
    expected = embed_spectrograms(encoder, windows).mean(0)
    assert torch.allclose(got[0], expected, atol=1e-6)
    assert torch.allclose(got[1], embed_spectrograms(encoder, [clip])[0], atol=1e-6)
    assert torch.allclose(embed_files(encoder, [song], None), embed_spectrograms(encoder, [song]))  # no clip length known


def test_file_windows_cover_the_file_with_the_fewest_windows_of_the_clip_length():
    assert file_windows(100, 100) == [(0, 100)] and file_windows(int(SQUEEZE_LIMIT * 100), 100) == [(0, 125)]
    bounds = file_windows(250, 100)
    assert bounds == [(0, 100), (75, 175), (150, 250)]  # first at the start, last at the end, evenly between
    for frames in (126, 301, 999, 1000):
        bounds = file_windows(frames, 100)
        assert len(bounds) == -(-frames // 100) and bounds[0][0] == 0 and bounds[-1][1] == frames
        assert all(b - a == 100 for a, b in bounds) and all(b2 >= a1 for (a1, _), (a2, b2) in zip(bounds, bounds[1:]))
    with pytest.raises(ValueError):
        file_windows(0, 100)
