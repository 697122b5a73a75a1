"""s3t.features: long files streamed part by part, batches bounded by samples (issue 32)."""

import numpy as np
import soundfile as sf
import torch

import s3t.features
from s3t.audio import load_audio
from s3t.cqt import CQT, CQTConfig
from s3t.features import cqt_batch, cqt_streamed, featurize_files

SR = 22050


def _music(path, seconds, seed=0, rate=44100):
    """A new note every second (55 Hz to 1.76 kHz) over a little noise, 16-bit WAV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    notes = 55 * 2 ** (rng.integers(0, 60, int(seconds) + 1) / 12)
    y = 0.2 * np.sin(2 * np.pi * np.repeat(notes, rate)[: t.size] * t)
    sf.write(path, (y + 0.01 * rng.standard_normal(t.size)).astype(np.float32), rate, subtype="PCM_16")
    return path


def test_a_long_file_streamed_in_parts_equals_its_whole_cqt(tmp_path):
    path = _music(tmp_path / "long.wav", 25.0)
    cqt = CQT.from_config(CQTConfig(time_compression=4))
    whole = cqt_batch(cqt, [load_audio(path)])[0]
    # Parts of 4 s with 1.5 s margins: six seams inside the file.
    streamed = cqt_streamed(cqt, str(path), part_s=4.0, margin_s=1.5)
    assert streamed.shape == whole.shape
    # Log magnitudes: equal where there is sound, to a small fraction of a dB-like unit.
    loud = whole > whole.max() - 8
    assert torch.quantile((streamed - whole).abs()[loud], 0.99) < 1e-3
    assert (streamed - whole).abs()[loud].max() < 2e-2


def test_featurize_files_streams_files_longer_than_stream_seconds_and_keeps_input_order(tmp_path, monkeypatch):
    paths = [str(_music(tmp_path / f"{name}.wav", seconds, seed=i))
             for i, (name, seconds) in enumerate([("short1", 2.0), ("long", 12.0), ("short2", 3.0)])]
    streamed = []
    real = s3t.features.cqt_streamed
    monkeypatch.setattr(s3t.features, "cqt_streamed", lambda cqt, path, **k: streamed.append(path) or real(cqt, path, **k))
    cqt = CQT.from_config(CQTConfig())
    features, kept, rejected = featurize_files(paths, cqt, stream_seconds=10.0)
    assert kept == paths and not rejected and streamed == [paths[1]]
    assert [f.shape[1] for f in features] == [1 + int(s * SR) // 512 for s in (2.0, 12.0, 3.0)]


def test_one_long_file_does_not_pad_a_batch_of_short_ones_to_its_length(tmp_path, monkeypatch):
    paths = [str(_music(tmp_path / "long.wav", 20.0))] + [str(_music(tmp_path / f"s{i}.wav", 1.0, seed=i)) for i in range(6)]
    padded = []
    real = s3t.features.cqt_batch
    monkeypatch.setattr(s3t.features, "cqt_batch", lambda cqt, waves: padded.append(len(waves) * max(w.shape[0] for w in waves)) or real(cqt, waves))
    featurize_files(paths, CQT.from_config(CQTConfig()), batch_size=4, batch_seconds=8.0, stream_seconds=None)
    # The 20 s file alone (with any company it would pad past the 32 s budget), then the short ones four at a time;
    # batched by count, the first batch alone would have padded three 1 s files to 20 s each (80 s).
    assert len(padded) == 3 and padded[0] == 20 * SR and sum(padded) <= 26 * SR + 10
