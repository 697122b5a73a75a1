"""Decoding audio files into the mono waveforms S3T consumes (paper Section 3.2).

The paper (Section 3.2, "Model Input") says each music sample "was first resampled to a
sampling rate of 22.05 kHz" before the CQT. It does not say how multi-channel audio is
reduced, which resampler is used, or what happens to unusable files. Our choices:

* Mono by averaging the channels (the usual convention; librosa's ``to_mono`` does the
  same). Down-mix matrices such as ffmpeg's are not used, so every decoder path mixes
  identically.
* Resampling with :func:`scipy.signal.resample_poly` at the exact rational ratio
  ``up/down = target/gcd : source/gcd``. It is a polyphase FIR filter with a Kaiser-windowed
  anti-aliasing low-pass, so it is exact for the rational rates music comes in
  (44.1 kHz -> 22.05 kHz is simply 1/2), runs in O(n), is deterministic across machines, and
  needs nothing beyond scipy (a core dependency). FFT resampling
  (:func:`scipy.signal.resample`) is avoided because it treats the clip as periodic and
  rings at the edges; soxr/resampy would add dependencies to the core library.
* Files that cannot be used are reported, never skipped silently: :class:`AudioError`
  names the file and the cause (missing, zero bytes, not decodable, empty, non-finite
  samples, silent, too short). Callers decide whether to drop or stop.

Decoding tries ``soundfile`` (libsndfile: WAV, FLAC, OGG Vorbis/Opus, AIFF, AU and, with
libsndfile >= 1.1, MP3) first and falls back to PyAV, whose wheels bundle ffmpeg, for
everything else (M4A/AAC, unusual MP3s). Both are imported lazily so that ``import
s3t.audio`` needs only numpy and scipy.
"""

from __future__ import annotations

import math
import os
import pathlib

import numpy as np
from scipy.signal import resample_poly

__all__ = [
    "AUDIO_EXTENSIONS",
    "SAMPLE_RATE",
    "AudioError",
    "find_audio_files",
    "load_audio",
]

SAMPLE_RATE = 22050
"""The paper's sampling rate in Hz (Section 3.2)."""

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aif", ".aiff", ".au"}
)
"""Lower-case file suffixes :func:`find_audio_files` treats as audio."""


class AudioError(ValueError):
    """A file that cannot be turned into a usable waveform.

    Attributes:
        path: the offending file.
        reason: a short cause, e.g. ``"zero bytes"`` or ``"silent (peak 0 < 1e-05)"``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = pathlib.Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Keeps the two-argument constructor working across pickling (e.g. worker processes).
        return (type(self), (self.path, self.reason))


def _decode_soundfile(path: pathlib.Path) -> tuple[np.ndarray, int] | None:
    """Decode with libsndfile. Returns ``(samples (n, channels) float32, rate)``, or ``None``
    when libsndfile does not recognise or cannot read the file."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.SoundFileError:
        return None
    return data, int(rate)


def _decode_pyav(path: pathlib.Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV/ffmpeg at its native rate.

    Returns ``(samples (n, channels) float32, rate)``; raises :class:`AudioError` when ffmpeg
    cannot open or decode the file or it has no audio stream.
    """
    import av
    import av.error

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise AudioError(path, f"not decodable as audio ({err})") from err
    with container:
        if not container.streams.audio:
            raise AudioError(path, "no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate
        if not rate:
            raise AudioError(path, "audio stream has no sample rate")
        # Convert every frame to planar float32 at the native rate and layout; resampling
        # happens later with scipy so that both decoder paths resample identically.
        converter = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for converted in converter.resample(frame):
                    chunks.append(converted.to_ndarray())  # (channels, samples)
            for converted in converter.resample(None):
                chunks.append(converted.to_ndarray())
        except av.error.FFmpegError as err:
            raise AudioError(path, f"decoding failed ({err})") from err
    if not chunks:
        raise AudioError(path, "empty (0 samples)")
    return np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False), int(rate)


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    *,
    min_seconds: float = 0.0,
    silence_threshold: float = 1e-5,
) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform at ``sample_rate`` Hz.

    Args:
        path: audio file in any format libsndfile or ffmpeg reads.
        sample_rate: output rate in Hz (positive integer); the paper uses 22050.
        min_seconds: reject clips shorter than this many seconds (0 accepts any length).
        silence_threshold: reject clips whose peak absolute amplitude (after mixing to
            mono, full scale = 1.0) is below this.

    Returns:
        ``np.ndarray`` of dtype float32, shape ``(n,)``, with
        ``n = ceil(n_source * sample_rate / source_rate)``.

    Raises:
        ValueError: an argument is out of range.
        AudioError: the file is missing, has zero bytes, is not decodable audio, has no
            samples, has NaN/Inf samples, is silent, or is shorter than ``min_seconds``.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if not min_seconds >= 0.0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}")
    if not silence_threshold >= 0.0:
        raise ValueError(f"silence_threshold must be >= 0, got {silence_threshold!r}")

    path = pathlib.Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "zero bytes")

    decoded = _decode_soundfile(path)
    if decoded is None:
        decoded = _decode_pyav(path)
    samples, source_rate = decoded  # (n, channels), Hz

    if samples.shape[0] == 0:
        raise AudioError(path, "empty (0 samples)")
    if not np.isfinite(samples).all():
        raise AudioError(path, "non-finite samples (NaN/Inf)")
    mono = samples.mean(axis=1, dtype=np.float32)  # (n,)
    peak = float(np.abs(mono).max())
    if peak < silence_threshold:
        raise AudioError(path, f"silent (peak {peak:.3g} < {silence_threshold:.3g})")
    seconds = mono.shape[0] / source_rate
    if seconds < min_seconds:
        raise AudioError(path, f"too short ({seconds:.3f} s < {min_seconds:.3f} s)")

    if source_rate != sample_rate:
        g = math.gcd(source_rate, sample_rate)
        mono = resample_poly(mono, up=sample_rate // g, down=source_rate // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def find_audio_files(root: str | os.PathLike[str]) -> list[pathlib.Path]:
    """All files under ``root`` (recursively) whose suffix, lower-cased, is in
    :data:`AUDIO_EXTENSIONS`, sorted by path.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    root = pathlib.Path(root)
    if not root.exists():
        raise FileNotFoundError(f"audio root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"audio root {root} is not a directory")
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
