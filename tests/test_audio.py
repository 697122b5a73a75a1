"""Tests for s3t.audio: real files in real formats, mono mixing, resampling, the PyAV fallback,
and every kind of unusable file being reported with its cause."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from scipy.signal import resample_poly

from s3t.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, find_audio_files, load_audio
from tests.conftest import tone

sf = pytest.importorskip("soundfile")
av = pytest.importorskip("av")


def _dominant_hz(y: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sample_rate)[spectrum.argmax()])


def _write_m4a(path, y: np.ndarray, sample_rate: int) -> None:
    """AAC in an MP4 container via PyAV's encoder (libsndfile cannot write or read it)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_wav_round_trip_is_exact_at_the_native_rate(tmp_path):
    y = tone(440.0, seconds=0.5)
    path = tmp_path / "a.wav"
    sf.write(path, y, SAMPLE_RATE, subtype="FLOAT")
    out = load_audio(path)
    assert out.dtype == np.float32 and out.shape == y.shape
    np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize(
    ("suffix", "write_kwargs"),
    [(".flac", {}), (".ogg", {"subtype": "VORBIS"}), (".mp3", {"format": "MP3"}), (".m4a", None)],
)
def test_compressed_formats_decode_to_the_right_pitch_and_length(tmp_path, suffix, write_kwargs):
    y = tone(1000.0, seconds=1.0, sample_rate=44100)
    path = tmp_path / f"a{suffix}"
    if write_kwargs is None:
        _write_m4a(path, y, 44100)
        with pytest.raises(sf.LibsndfileError):  # so this one really exercises the PyAV path
            sf.info(path)
    else:
        sf.write(path, y, 44100, **write_kwargs)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    # Lossy codecs add priming/padding samples (AAC: 1024 + frame rounding): allow 0.1 s.
    assert abs(out.size - SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    assert _dominant_hz(out, SAMPLE_RATE) == pytest.approx(1000.0, abs=2.0)
    assert 0.3 < np.abs(out).max() < 0.7


def test_stereo_is_mixed_to_the_channel_mean(tmp_path):
    left, right = tone(440.0, seconds=0.2), tone(660.0, seconds=0.2, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)


def test_resampling_44k1_to_22k05_keeps_frequency_and_duration(tmp_path):
    path = tmp_path / "hi.wav"
    sf.write(path, tone(1000.0, seconds=1.0, sample_rate=44100), 44100, subtype="FLOAT")
    out = load_audio(path, SAMPLE_RATE)
    assert out.shape == (SAMPLE_RATE,)
    assert _dominant_hz(out, SAMPLE_RATE) == pytest.approx(1000.0, abs=1.0)
    # The anti-aliasing filter passes 1 kHz at full amplitude (away from the edges).
    assert np.abs(out[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)


def test_pyav_decodes_when_soundfile_fails(tmp_path, monkeypatch):
    y = tone(1000.0, seconds=1.0, sample_rate=44100)
    wav, mp3 = tmp_path / "a.wav", tmp_path / "a.mp3"
    sf.write(wav, y, 44100, subtype="PCM_16")
    sf.write(mp3, y, 44100, format="MP3")
    calls = []

    def failing_open(*args, **kwargs):
        calls.append(args[0])
        raise sf.LibsndfileError(1, prefix="forced failure: ")

    monkeypatch.setattr(sf, "SoundFile", failing_open)
    out_wav = load_audio(wav)
    out_mp3 = load_audio(mp3)
    assert calls == [str(wav), str(mp3)]
    # Same samples as the soundfile path would give, up to 16-bit quantisation (3e-5).
    np.testing.assert_allclose(out_wav, resample_poly(y, 1, 2), atol=1e-4)
    assert _dominant_hz(out_mp3, SAMPLE_RATE) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize("rate, fmt", [(44100, "FLAC"), (48000, "WAV"), (44100, "OGG"), (32000, "WAV")])
def test_a_part_equals_the_same_samples_of_the_whole_file(tmp_path, rate, fmt):
    # The soundtrack cutter decodes only a long track's clips; they must be the clips the whole decode gives.
    rng = np.random.default_rng(0)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, (0.1 * rng.standard_normal((rate * 8, 2))).astype(np.float32), rate, format=fmt)
    whole = load_audio(path)
    for start, end in [(0.0, 1.3), (1.234, 5.0), (6.77, None), (5.5, 7.999)]:
        part = load_audio(path, start_s=start, end_s=end)
        np.testing.assert_array_equal(part, whole[round(start * SAMPLE_RATE):None if end is None else round(end * SAMPLE_RATE)])


def test_a_part_through_pyav_equals_the_same_samples_of_the_whole_file(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440.0, seconds=6.0, sample_rate=44100), 44100, subtype="PCM_16")
    monkeypatch.setattr(sf, "SoundFile", lambda *a, **k: (_ for _ in ()).throw(sf.LibsndfileError(1, prefix="forced: ")))
    whole = load_audio(path)
    np.testing.assert_array_equal(load_audio(path, start_s=2.5, end_s=4.0), whole[round(2.5 * SAMPLE_RATE):round(4.0 * SAMPLE_RATE)])


def _reason(path, **kwargs) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(path, **kwargs)
    assert info.value.path == path
    assert str(info.value) == f"{path}: {info.value.reason}"
    return info.value.reason


def test_missing_file(tmp_path):
    assert _reason(tmp_path / "nope.wav") == "file not found"


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    assert _reason(path) == "zero bytes"


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 20)
    assert _reason(path).startswith("not decodable as audio")


def test_nan_samples(tmp_path):
    y = tone(440.0, seconds=0.2)
    y[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, SAMPLE_RATE, subtype="FLOAT")
    assert _reason(path) == "non-finite samples (NaN/Inf)"


def test_silent_file(tmp_path):
    path = tmp_path / "zeros.flac"
    sf.write(path, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    assert _reason(path).startswith("silent")


def test_wav_header_without_samples(tmp_path):
    path = tmp_path / "header_only.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    assert path.stat().st_size > 0
    assert _reason(path) == "empty (0 samples)"


def test_too_short(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, tone(440.0, seconds=0.5), SAMPLE_RATE)
    assert _reason(path, min_seconds=1.0).startswith("too short")
    assert load_audio(path, min_seconds=0.5).shape == (SAMPLE_RATE // 2,)


@pytest.mark.parametrize(
    "kwargs",
    [{"sample_rate": 0}, {"sample_rate": 22050.0}, {"min_seconds": -1.0}, {"silence_threshold": -1e-5},
     {"start_s": -1.0}, {"start_s": float("inf")}, {"start_s": 2.0, "end_s": 1.0}, {"end_s": float("nan")}],
)
def test_bad_arguments_are_value_errors_not_audio_errors(tmp_path, kwargs):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440.0, seconds=0.1), SAMPLE_RATE)
    with pytest.raises(ValueError) as info:
        load_audio(path, **kwargs)
    assert not isinstance(info.value, AudioError)


def test_audio_error_pickles_with_path_and_reason(tmp_path):
    err = pickle.loads(pickle.dumps(AudioError(tmp_path / "x.wav", "zero bytes")))
    path = tmp_path / "x.wav"
    assert (err.path, err.reason, str(err)) == (path, "zero bytes", f"{path}: zero bytes")


def test_find_audio_files_recurses_sorts_and_ignores_case(tmp_path):
    for rel in ["b/2.FLAC", "a/1.wav", "a/deep/3.Mp3", "a/readme.txt", "c.ogg", "notes.md"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = find_audio_files(tmp_path)
    expected = ["a/1.wav", "a/deep/3.Mp3", "b/2.FLAC", "c.ogg"]
    assert found == [tmp_path / rel for rel in expected]
    assert all(p.suffix.lower() in AUDIO_EXTENSIONS for p in found)


def test_find_audio_files_keeps_what_looks_like_audio_so_load_audio_names_it(tmp_path):
    sf.write(tmp_path / "good.wav", tone(440.0, seconds=0.1), SAMPLE_RATE)
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "loop.wav").symlink_to("loop.wav")
    (tmp_path / "gone.flac").symlink_to("nothing-here.flac")
    (tmp_path / "loopdir").symlink_to(tmp_path, target_is_directory=True)  # not followed: no endless search
    found = find_audio_files(tmp_path)
    assert [p.name for p in found] == ["folder.wav", "gone.flac", "good.wav", "loop.wav"]
    assert _reason(tmp_path / "folder.wav") == "a folder, not an audio file"
    assert _reason(tmp_path / "loop.wav").startswith("symlink loop")
    assert _reason(tmp_path / "gone.flac").startswith("broken link")


def test_find_audio_files_rejects_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_audio_files(tmp_path / "missing")


def _wav_with_rate(path, claimed_rate: int, seconds: float = 1.0) -> None:
    """A 16-bit mono WAV written at 8 kHz whose fmt chunk then claims ``claimed_rate`` Hz."""
    sf.write(path, tone(440.0, seconds=seconds, sample_rate=8000), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"RIFF" and data[12:16] == b"fmt "
    data[24:28] = struct.pack("<I", claimed_rate)  # sample rate
    data[28:32] = struct.pack("<I", claimed_rate * 2)  # byte rate
    path.write_bytes(bytes(data))


def test_wav_claiming_1_hz_is_refused_before_allocating(tmp_path):
    path = tmp_path / "one_hz.wav"
    _wav_with_rate(path, 1, seconds=2.5)  # 40 KB: 20,000 s at 1 Hz, 441 M samples after resampling
    assert path.stat().st_size == pytest.approx(40_000, rel=0.01)
    reason = _reason(path)
    assert reason == "impossible header (a sample rate of 1 Hz, outside 4000..384000 Hz)"
    _wav_with_rate(path, 22050, seconds=2.5)  # the same samples under a true rate are kept
    assert load_audio(path).shape == (20000,)


def _flac_claiming(path, total_samples: int) -> None:
    """A 1 s FLAC at 22.05 kHz whose STREAMINFO then claims ``total_samples`` frames."""
    sf.write(path, tone(440.0, seconds=1.0), SAMPLE_RATE)
    data = bytearray(path.read_bytes())
    # fLaC, block header (4 bytes), STREAMINFO: total samples are the low 36 bits of bytes 18..26.
    field = int.from_bytes(data[8 + 10 : 8 + 18], "big")
    field = (field & ~((1 << 36) - 1)) | total_samples
    data[8 + 10 : 8 + 18] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))


def test_header_promising_hours_is_refused_before_decoding(tmp_path):
    path = tmp_path / "long.flac"
    _flac_claiming(path, 2**35)  # 18 days at 22.05 kHz
    assert _reason(path).startswith("too long (the header claims 1558")
    assert "more than max_seconds=3600" in _reason(path)
    _flac_claiming(path, SAMPLE_RATE)
    assert load_audio(path, max_seconds=1.5).shape == (SAMPLE_RATE,)
    assert _reason(path, max_seconds=0.5).startswith("too long (the header claims 1 s")


@pytest.mark.parametrize(
    ("suffix", "write_kwargs"),
    [(".wav", {"subtype": "PCM_16"}), (".flac", {}), (".ogg", {"subtype": "VORBIS"}), (".mp3", {"format": "MP3"})],
)
def test_file_cut_in_half_is_refused_and_a_whole_one_kept(tmp_path, suffix, write_kwargs):
    whole, cut = tmp_path / f"whole{suffix}", tmp_path / f"cut{suffix}"
    sf.write(whole, tone(440.0, seconds=2.0, sample_rate=44100), 44100, **write_kwargs)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert abs(load_audio(whole).size - 2 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    reason = _reason(cut)
    assert reason.startswith(("truncated", "corrupt or truncated", "not decodable")), reason


def test_wav_missing_its_last_bytes_is_kept_with_what_it_has(tmp_path):
    path = tmp_path / "nearly.wav"
    sf.write(path, tone(440.0, seconds=1.0), SAMPLE_RATE, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])  # 1000 of 22,050 frames missing: 4.5 % < 10 %
    assert load_audio(path).shape == (SAMPLE_RATE - 1000,)


def test_header_claiming_absurd_channels_is_refused(tmp_path):
    path = tmp_path / "many.wav"
    sf.write(path, tone(440.0, seconds=0.5), SAMPLE_RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[22:24] = struct.pack("<H", 1000)  # channels
    data[32:34] = struct.pack("<H", 2000)  # block align
    path.write_bytes(bytes(data))
    reason = _reason(path)
    assert reason == "impossible header (1000 channels, outside 1..64)" or reason.startswith("not decodable"), reason
