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
  names the file and the cause. Callers decide whether to drop or stop (the featurizer
  drops the file and lists it with the reason among its rejects).

What is refused, and why (each an :class:`AudioError` with a one-line reason):

* not there or not a file: missing, a broken link, a symlink loop, a folder (even one named
  ``x.wav``), anything other than a regular file, zero bytes;
* a header that cannot be true, checked *before* any sample is decoded so that a hostile
  header cannot make the decoder allocate what it claims: a sample rate outside
  [:data:`MIN_SOURCE_RATE`, :data:`MAX_SOURCE_RATE`] Hz (a 40 KB WAV claiming 1 Hz would
  otherwise become hours of audio after resampling), more than :data:`MAX_CHANNELS`
  channels, or a promised length over ``max_seconds``. Samples are read in blocks of
  :data:`BLOCK_FRAMES` frames and mixed to mono block by block, so memory stays bounded by
  the samples really present (at most ``max_seconds`` of mono) whatever the header says;
* truncated: a file holding under :data:`MIN_COMPLETE` (90 %) of the frames its header
  promises (the WAV ``data`` chunk size, the FLAC STREAMINFO total, an MP3 Xing/Info
  frame count, the container duration for PyAV), or an Ogg stream without its
  end-of-stream page (Ogg states no length up front; its cut loses that last page). A file
  missing less than 10 % of its promise (a last MP3 frame, a few bytes of a WAV) is kept
  with what it has: codec padding makes the promised and decoded lengths differ slightly
  anyway. A raw MP3 without a Xing/Info frame states no length, so its cut cannot be seen;
* not decodable, decoding failing part-way, no samples, NaN/Inf samples, silent, a constant
  offset only (DC: loud by its peak, no sound), shorter than ``min_seconds``.

Decoding tries ``soundfile`` (libsndfile: WAV, FLAC, OGG Vorbis/Opus, AIFF, AU and, with
libsndfile >= 1.1, MP3) first and falls back to PyAV, whose wheels bundle ffmpeg, for
everything else (M4A/AAC, unusual MP3s). Both are imported lazily so that ``import
s3t.audio`` needs only numpy and scipy.
"""

from __future__ import annotations

import errno
import math
import os
import pathlib
import stat
import struct

import numpy as np
from scipy.signal import resample_poly

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_CHANNELS",
    "MAX_SECONDS",
    "MAX_SOURCE_RATE",
    "MIN_COMPLETE",
    "MIN_SOURCE_RATE",
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

MIN_SOURCE_RATE = 4000
"""Lowest sample rate in Hz a header may claim; below it the file is corrupt or not music."""

MAX_SOURCE_RATE = 384000
"""Highest sample rate in Hz a header may claim (the top of professional audio)."""

MAX_CHANNELS = 64
"""Most channels a header may claim."""

MAX_SECONDS = 3600.0
"""Default longest accepted file in seconds (``load_audio(max_seconds=...)``); decoding holds its
mono waveform in memory: ``max_seconds * source_rate * 4`` bytes, 635 MB at 44.1 kHz."""

MIN_COMPLETE = 0.9
"""Smallest fraction of the frames a header promises that must be present (else truncated)."""

BLOCK_FRAMES = 65536
"""Frames decoded per block; the only allocation sized by the file, never by its header."""

_MAX_RIFF_CHUNKS = 64  # chunks walked looking for a WAV's "data"; real files have a handful
_OGG_TAIL_BYTES = 65536 + 27 + 255  # the largest Ogg page: header, segment table, 255 x 255 bytes


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


def _wav_promised_frames(path: pathlib.Path, size: int) -> int | None:
    """Frames a RIFF/WAVE file's ``data`` chunk declares, or None when it is not such a file or
    declares no usable size.

    libsndfile clamps a ``data`` chunk that runs past the end of the file to what is present, so a
    WAV cut in half would otherwise read as a complete, shorter file; the declared size is the
    only trace of the missing half.
    """
    block_align = 0
    with path.open("rb") as fh:
        if fh.read(12)[:4] != b"RIFF":
            return None
        pos = 12
        for _ in range(_MAX_RIFF_CHUNKS):
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                return None
            chunk, chunk_size = struct.unpack("<4sI", head)
            if chunk == b"fmt ":
                fmt = fh.read(16)
                if len(fmt) == 16:
                    block_align = struct.unpack("<H", fmt[12:14])[0]
            elif chunk == b"data":
                # 0 and 0xFFFFFFFF mark a size the writer never filled in (streamed WAV).
                if not block_align or chunk_size in (0, 0xFFFFFFFF):
                    return None
                return chunk_size // block_align
            pos += 8 + chunk_size + (chunk_size & 1)
            if pos >= size:
                return None
    return None


def _ogg_ends_cleanly(path: pathlib.Path, size: int) -> bool:
    """True when the last Ogg page of the file carries the end-of-stream flag.

    An Ogg stream states no total length up front; a file cut anywhere loses its final page,
    whose header type has bit 0x04 set, so its absence is how a cut is recognised.
    """
    with path.open("rb") as fh:
        fh.seek(max(0, size - _OGG_TAIL_BYTES))
        tail = fh.read()
    last = tail.rfind(b"OggS")
    return last >= 0 and last + 5 < len(tail) and bool(tail[last + 5] & 0x04)


def _check_header(path: pathlib.Path, rate: int, channels: int, seconds: float | None, max_seconds: float) -> None:
    """Refuse a header that cannot describe usable music, before anything is decoded."""
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise AudioError(
            path, f"impossible header (a sample rate of {rate} Hz, outside {MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz)"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(path, f"impossible header ({channels} channels, outside 1..{MAX_CHANNELS})")
    if seconds is not None and seconds > max_seconds:
        raise AudioError(
            path, f"too long (the header claims {seconds:.0f} s, more than max_seconds={max_seconds:.0f})"
        )


def _check_complete(path: pathlib.Path, present: int, promised: int | None, rate: int) -> None:
    """Refuse a file holding under MIN_COMPLETE of the frames its header promises."""
    if promised and present < MIN_COMPLETE * promised:
        raise AudioError(
            path, f"truncated ({present / rate:.2f} s present of the {promised / rate:.2f} s its header promises)"
        )


class _MonoBuffer:
    """Mono float32 blocks as they are decoded, refusing to grow past ``limit`` frames.

    With a frame range ``[lo, hi)`` only the frames inside it are kept, and ``full`` says when the
    decoder may stop; ``frames`` is the position in the file, ``first`` where the decoder starts
    (``lo`` after a seek, 0 for a decoder that reads from the start).
    """

    def __init__(self, path: pathlib.Path, rate: int, max_seconds: float, lo: int = 0, hi: int | None = None,
                 first: int = 0) -> None:
        self.path, self.rate, self.max_seconds = path, rate, max_seconds
        self.limit = int(max_seconds * rate) + 1
        self.lo, self.hi = lo, hi
        self.blocks: list[np.ndarray] = []
        self.frames = first

    @property
    def full(self) -> bool:
        return self.hi is not None and self.frames >= self.hi

    def add(self, block: np.ndarray) -> None:
        """Append a ``(frames, channels)`` float32 block, mixed to mono."""
        first = self.frames
        self.frames += block.shape[0]
        if self.frames > self.limit:
            raise AudioError(self.path, f"too long (more than max_seconds={self.max_seconds:.0f} s of samples)")
        a, b = max(self.lo - first, 0), block.shape[0] if self.hi is None else min(self.hi - first, block.shape[0])
        if b > a:
            self.blocks.append(block[a:b].mean(axis=1, dtype=np.float32))

    def samples(self) -> np.ndarray:
        """The mono waveform ``(frames,)`` float32 (of the range, when one was given)."""
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, dtype=np.float32)


def _decode_soundfile(path: pathlib.Path, size: int, max_seconds: float, span=None) -> tuple[np.ndarray, int] | None:
    """Decode with libsndfile. Returns ``(mono samples (n,) float32, rate)``, or ``None`` when
    libsndfile does not recognise the file or fails reading it (PyAV then tries). ``span(rate)``
    gives the source frame range ``(lo, hi)`` to decode (seeking to ``lo``), or None for all."""
    import soundfile

    try:
        sound = soundfile.SoundFile(_os_name(path))
    except soundfile.SoundFileError:
        return None
    with sound:
        rate, channels, frames = int(sound.samplerate), int(sound.channels), int(sound.frames)
        wav_frames = _wav_promised_frames(path, size) if sound.format == "WAV" else None
        promised = max(frames, wav_frames or 0)
        _check_header(path, rate, channels, promised / rate if rate else None, max_seconds)
        if sound.format == "OGG" and not _ogg_ends_cleanly(path, size):
            raise AudioError(path, "truncated (the Ogg stream has no end-of-stream page)")
        lo, hi = span(rate) if span else (0, None)
        mono = _MonoBuffer(path, rate, max_seconds, lo, hi, first=lo)
        try:
            if lo:
                sound.seek(lo)
            while not mono.full:
                block = sound.read(BLOCK_FRAMES, dtype="float32", always_2d=True)  # (<= BLOCK_FRAMES, channels)
                if block.shape[0] == 0:
                    break
                mono.add(block)
        except soundfile.SoundFileError:
            return None
    _check_complete(path, mono.frames, promised if hi is None else min(promised, hi), rate)
    return mono.samples(), rate


def _decode_pyav(path: pathlib.Path, size: int, max_seconds: float, span=None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV/ffmpeg at its native rate (only the source frames
    ``span(rate)`` gives, when given: frames before it are decoded and dropped, not seeked past,
    because ffmpeg's seeking is not sample-exact in every container).

    Returns ``(mono samples (n,) float32, rate)``; raises :class:`AudioError` when ffmpeg
    cannot open or decode the file, it has no audio stream, or its header fails the checks.
    """
    import av
    import av.error

    name = _os_name(path)
    try:
        # ffmpeg takes a file object where the name is not UTF-8 text.
        container = av.open(name if isinstance(name, str) else open(name, "rb"))
    except av.error.FFmpegError as err:
        raise AudioError(path, f"not decodable as audio ({err})") from err
    with container:
        if not container.streams.audio:
            raise AudioError(path, "no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate
        if not rate:
            raise AudioError(path, "audio stream has no sample rate")
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000  # microseconds
        else:
            seconds = None
        _check_header(path, int(rate), stream.layout.nb_channels, seconds, max_seconds)
        if "ogg" in container.format.name.split(",") and not _ogg_ends_cleanly(path, size):
            raise AudioError(path, "truncated (the Ogg stream has no end-of-stream page)")
        # Convert every frame to planar float32 at the native rate and layout; resampling
        # happens later with scipy so that both decoder paths resample identically.
        converter = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        lo, hi = span(int(rate)) if span else (0, None)
        mono = _MonoBuffer(path, int(rate), max_seconds, lo, hi)
        try:
            for frame in container.decode(stream):
                for converted in converter.resample(frame):
                    mono.add(converted.to_ndarray().T)  # (samples, channels)
                if mono.full:
                    break
            else:
                for converted in converter.resample(None):
                    mono.add(converted.to_ndarray().T)
        except av.error.FFmpegError as err:
            promise = f" of the {seconds:.2f} s its header promises" if seconds else ""
            raise AudioError(
                path, f"corrupt or truncated (decoding failed after {mono.frames / rate:.2f} s{promise}: {err})"
            ) from err
    if mono.frames == 0:
        raise AudioError(path, "empty (0 samples)")
    promised = round(seconds * rate) if seconds else None
    _check_complete(path, mono.frames, promised if hi is None or promised is None else min(promised, hi), int(rate))
    return mono.samples(), int(rate)


def _os_name(path: pathlib.Path) -> str | bytes:
    """The path as text where it is UTF-8, else as the bytes the file system holds (a name written
    on another system, say Latin-1 ``caf\\xe9.wav``, reaches Python with surrogate escapes that
    the decoders' libraries cannot encode)."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def _regular_file_size(path: pathlib.Path) -> int:
    """The size in bytes of a regular file; AudioError saying what else the path is."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AudioError(path, "broken link (its target does not exist)" if path.is_symlink() else "file not found") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise AudioError(path, "symlink loop (the link points back to itself)") from None
        raise AudioError(path, f"cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(path, "a folder, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(path, "not a regular file")
    if info.st_size == 0:
        raise AudioError(path, "zero bytes")
    return info.st_size


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    *,
    min_seconds: float = 0.0,
    silence_threshold: float = 1e-5,
    max_seconds: float = MAX_SECONDS,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> np.ndarray:
    """Decode an audio file, or the part of it from ``start_s`` to ``end_s``, to a mono float32
    waveform at ``sample_rate`` Hz.

    Args:
        path: audio file in any format libsndfile or ffmpeg reads.
        sample_rate: output rate in Hz (positive integer); the paper uses 22050.
        min_seconds: reject clips shorter than this many seconds (0 accepts any length).
        silence_threshold: reject clips whose peak absolute amplitude (after mixing to
            mono, full scale = 1.0) is below this.
        max_seconds: refuse files longer than this many seconds, by their header before
            decoding and by their samples while decoding (bounds memory, see the module
            docstring).
        start_s, end_s: the part to decode, in seconds from the start (``end_s`` None: to the
            end). Only that part and a margin of a few filter lengths around it are decoded
            (libsndfile seeks to it), and the result equals the same samples of the whole
            file's waveform: the margin starts on a multiple of the resampler's decimation, so
            its polyphase filter sees the same inputs in the same phase. Checks (silence,
            ``min_seconds``, truncation) then apply to the part.

    Returns:
        ``np.ndarray`` of dtype float32, shape ``(n,)``, with
        ``n = ceil(n_source * sample_rate / source_rate)`` for the whole file, and for a part the
        samples ``round(start_s * sample_rate)`` to ``round(end_s * sample_rate)`` of that.

    Raises:
        ValueError: an argument is out of range.
        AudioError: the file is missing or not a regular file, has zero bytes, has an
            impossible header, is truncated, is not decodable audio, has no samples, has
            NaN/Inf samples, is silent, or is shorter than ``min_seconds`` or longer than
            ``max_seconds`` (see the module docstring).
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if not min_seconds >= 0.0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}")
    if not silence_threshold >= 0.0:
        raise ValueError(f"silence_threshold must be >= 0, got {silence_threshold!r}")
    if not max_seconds > 0.0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
    if not (math.isfinite(start_s) and start_s >= 0.0):
        raise ValueError(f"start_s must be a finite number of seconds >= 0, got {start_s!r}")
    if end_s is not None and not (math.isfinite(end_s) and end_s > start_s):
        raise ValueError(f"end_s must be a finite number of seconds > start_s={start_s!r}, got {end_s!r}")
    windowed = start_s > 0.0 or end_s is not None

    def span(rate: int) -> tuple[int, int | None]:
        # Source frames [lo, hi) whose resampling gives the output samples of [start_s, end_s).
        g = math.gcd(rate, sample_rate)
        up, down = sample_rate // g, rate // g
        margin = math.ceil(10 * max(up, down) / up) + 2 * down  # resample_poly's half filter, in source frames
        lo = max(0, (math.floor(start_s * rate) - margin) // down * down)
        hi = None if end_s is None else math.ceil(end_s * rate) + margin
        return lo, hi

    path = pathlib.Path(path)
    size = _regular_file_size(path)
    decoded = _decode_soundfile(path, size, max_seconds, span if windowed else None)
    if decoded is None:
        decoded = _decode_pyav(path, size, max_seconds, span if windowed else None)
    mono, source_rate = decoded  # (n,), Hz
    lo = span(source_rate)[0] if windowed else 0

    if mono.shape[0] == 0:
        raise AudioError(path, "empty (0 samples)")
    if not np.isfinite(mono).all():
        raise AudioError(path, "non-finite samples (NaN/Inf)")
    peak = float(np.abs(mono).max())
    if peak < silence_threshold:
        raise AudioError(path, f"silent (peak {peak:.3g} < {silence_threshold:.3g})")
    if silence_threshold > 0.0 and mono.shape[0] > 1:
        # A constant offset (DC) is loud by its peak but holds no sound at all.
        offset = float(mono.mean(dtype=np.float64))
        swing = float(np.abs(mono - np.float32(offset)).max())
        if swing < silence_threshold:
            raise AudioError(path, f"no sound (a constant offset of {offset:.3g} only)")
    seconds = mono.shape[0] / source_rate
    if seconds < min_seconds:
        raise AudioError(path, f"too short ({seconds:.3f} s < {min_seconds:.3f} s)")

    if source_rate != sample_rate:
        g = math.gcd(source_rate, sample_rate)
        mono = resample_poly(mono, up=sample_rate // g, down=source_rate // g)
    if windowed:
        # Output sample i of the part is sample lo * sample_rate / source_rate + i of the whole (exact:
        # lo is a multiple of the decimation).
        offset = lo * sample_rate // source_rate
        stop = None if end_s is None else round(end_s * sample_rate) - offset
        mono = mono[round(start_s * sample_rate) - offset:stop]
    return np.ascontiguousarray(mono, dtype=np.float32)


def find_audio_files(root: str | os.PathLike[str], unreadable: list[tuple[str, str]] | None = None) -> list[pathlib.Path]:
    """Every path under ``root`` (recursively) whose suffix, lower-cased, is in
    :data:`AUDIO_EXTENSIONS`, sorted by path.

    Paths that look like audio but are not regular files (a folder named ``x.wav``, a broken
    link, a symlink loop) are included, so that :func:`load_audio` reports each with its
    reason instead of the file vanishing from a corpus without a word. Symlinked folders are
    not followed (no loops while searching). A folder that cannot be listed (no permission)
    is appended to ``unreadable`` as ``(path, reason)`` when a list is given, so the caller can
    report its files as not read.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is not a directory.
    """
    root = pathlib.Path(root)
    if not root.exists():
        raise FileNotFoundError(f"audio root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"audio root {root} is not a directory")

    def failed(err: OSError) -> None:
        if unreadable is not None:
            unreadable.append((str(err.filename), f"folder cannot be read ({err.strerror}); its files were not embedded"))

    found = []
    for folder, dirs, files in os.walk(root, onerror=failed):
        found += [pathlib.Path(folder, name) for name in (*dirs, *files) if pathlib.Path(name).suffix.lower() in AUDIO_EXTENSIONS]
    return sorted(found)
