"""Audio files -> compressed log-CQT clips (paper 3.2 "Model Input").

Decoding (the slow, CPU-bound part) runs in worker processes; the CQT runs in the
calling process on the CQT module's device, a batch of clips at a time. A file that
cannot be used is never dropped silently: it comes back with the reason from
:class:`s3t.audio.AudioError` (the refusal policy, and why a hostile header cannot make a
decode allocate more than the samples really present, is in :mod:`s3t.audio`); a decoder
library failing in a way load_audio does not recognise costs that file only, with the
exception named in the reason.

This module holds the pieces shared by the in-memory path (:func:`featurize_files`, used by
the CLI on small inputs) and the sharded path for whole corpora (:mod:`s3t.shards`):

* :func:`decode_files` keeps at most ``max_in_flight`` decode jobs submitted at a time, so
  memory is bounded by that many decoded waveforms however long the input list is
  (``ProcessPoolExecutor.map`` would submit every job at once and buffer every result).
  A worker that dies (a decoder crashing on a malformed file) takes the in-flight jobs
  with it; they are re-run one at a time in a separate process, so the culprit alone is
  rejected, and then the pool is restarted.
* :func:`cqt_batch` pads a batch of waveforms to the longest, runs the CQT once, and cuts
  each clip back to its own length before time compression (see its docstring for why
  the cut must come before the compression). :func:`featurize_files` fills a batch up to a
  number of *samples* (padding included), not of files, so one long file among short ones
  does not pad them all to its length.
* :func:`cqt_streamed` featurizes a long file (by its header, over ``stream_seconds``) part
  by part in the calling process: each part is decoded alone (:func:`s3t.audio.load_audio`
  with ``start_s``/``end_s``, the same samples as the whole file's) with a margin of
  :data:`STREAM_MARGIN_S` on each side, its CQT frames inside the part kept and the margin's
  dropped, and only the raw frames of the whole file (84 bins x 43 frames/s, 52 MB for an
  hour) are held. A 59-minute file so needs about the memory of a 60-second one. The kept
  frames equal those of the whole file's CQT up to float rounding and the band-limiting of
  the multi-rate decimation, whose reach is far inside the margin (tests/test_features.py
  bounds the difference).

Worker processes are started with ``forkserver`` where available (``spawn`` elsewhere):
forking a parent that holds a CUDA context or a running OpenMP pool is unsafe. Workers
unpickle :func:`_decode` and so import this module; torch is therefore imported only inside
the functions that need it, which keeps each worker at numpy + scipy (about 1 s and
~100 MB to start instead of ~3 s and ~400 MB with torch).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from s3t.audio import AudioError, load_audio

if TYPE_CHECKING:
    import torch

    from s3t.cqt import CQT

__all__ = ["DecodeJob", "Decoded", "Rejected", "cqt_batch", "cqt_streamed", "decode_files", "featurize_files"]

STREAM_PART_S = 60.0
"""Seconds of audio per part of a streamed long file (rounded to whole CQT hops)."""

STREAM_MARGIN_S = 3.0
"""Seconds decoded on each side of a part and dropped after the CQT: over four times the longest kernel (0.74 s at
C1) plus the decimation filter's reach."""


@dataclass(frozen=True)
class Rejected:
    """A file left out of the features, and why."""

    path: str
    reason: str


class DecodeJob(NamedTuple):
    """One file to decode: ``load_audio(path, sample_rate, min_seconds=min_seconds)``."""

    path: str
    sample_rate: int
    min_seconds: float


class Decoded(NamedTuple):
    """The outcome of one :class:`DecodeJob`.

    ``wave`` is the mono float32 waveform ``(n,)`` at the job's rate, or ``None`` when the file
    was rejected, with the cause in ``reason`` (``""`` on success). ``seconds`` is the wall
    time the decode took in whichever process ran it.
    """

    path: str
    wave: np.ndarray | None
    reason: str
    seconds: float


def _decode(job: DecodeJob) -> Decoded:
    start = time.perf_counter()
    try:
        wave, reason = load_audio(job.path, job.sample_rate, min_seconds=job.min_seconds), ""
    except AudioError as err:
        wave, reason = None, err.reason
    except Exception as err:  # noqa: BLE001
        # load_audio turns every known kind of bad file into AudioError; anything else is a
        # decoder library failing on one file, which must cost that file, not a corpus-wide run.
        wave, reason = None, f"decoder error ({type(err).__name__}: {err})"
    return Decoded(job.path, wave, reason, time.perf_counter() - start)


def _mp_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _decode_one_by_one(decode: Callable[[DecodeJob], Decoded], jobs: list[DecodeJob]) -> Iterator[Decoded]:
    """Run jobs one at a time in a single worker process, so a crash names its job; the
    process is replaced after each crash."""
    pool = None
    try:
        for job in jobs:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=1, mp_context=_mp_context())
            try:
                result = pool.submit(decode, job).result()
            except BrokenProcessPool:
                pool.shutdown(wait=True)
                pool = None
                result = Decoded(job.path, None, "decoder crashed (worker process died)", 0.0)
            yield result
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _decode_in_pool(
    jobs: Iterator[DecodeJob], decode: Callable[[DecodeJob], Decoded], workers: int, max_in_flight: int
) -> Iterator[Decoded]:
    # Each window entry is [job, future]; the future is None while submitting, so a job
    # whose submit fails on a broken pool is still in the window and gets re-run.
    window: deque[list] = deque()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())
    try:
        while True:
            try:
                while len(window) < max_in_flight:
                    job = next(jobs, None)
                    if job is None:
                        break
                    window.append([job, None])
                    window[-1][1] = pool.submit(decode, job)
                if not window:
                    return
                future: Future = window[0][1]
                result = future.result()
            except BrokenProcessPool:
                pool.shutdown(wait=True, cancel_futures=True)
                stranded = [job for job, _ in window]
                window.clear()
                yield from _decode_one_by_one(decode, stranded)
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())
                continue
            window.popleft()
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def decode_files(
    paths: Iterable[str | os.PathLike],
    sample_rate: int,
    *,
    min_seconds: float = 0.0,
    workers: int = 0,
    max_in_flight: int | None = None,
    decode: Callable[[DecodeJob], Decoded] | None = None,
) -> Iterator[Decoded]:
    """Decode files lazily, yielding one :class:`Decoded` per path in input order.

    Args:
        paths: audio files; consumed lazily, so a generator over a huge corpus is fine.
        sample_rate: output rate in Hz.
        min_seconds: files shorter than this are rejected.
        workers: decode in that many processes; 0 decodes in the calling process.
        max_in_flight: most jobs submitted and not yet yielded (default ``2 * workers``);
            this many decoded waveforms is the most ever held in memory besides what the
            caller keeps.
        decode: a picklable module-level function ``DecodeJob -> Decoded`` replacing the
            default :func:`s3t.audio.load_audio`-based decoder.

    Raises:
        ValueError: ``workers < 0`` or ``max_in_flight < 1``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if max_in_flight is None:
        max_in_flight = max(1, 2 * workers)
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
    decode = _decode if decode is None else decode
    jobs = (DecodeJob(str(p), sample_rate, float(min_seconds)) for p in paths)
    if workers == 0:
        return (decode(job) for job in jobs)
    return _decode_in_pool(jobs, decode, workers, max_in_flight)


def cqt_batch(cqt: CQT, waves: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """The CQT of several waveforms in one call: ``cqt(wave)`` for each, batched.

    The waveforms are zero-padded to the longest and transformed together. Each clip's raw
    CQT frames are cut to its own ``1 + n // hop_length`` *before* time compression: the
    frames past a clip's end see only zeros from the padding, exactly as with the CQT's own
    zero centre padding, so up to float rounding they equal the per-clip frames, but a
    compression block straddling the clip's end would otherwise average in extra frames.

    Args:
        cqt: the transform, on any device.
        waves: 1-D float32 waveforms ``(n_i,)`` at ``cqt.config.sample_rate``, ``n_i >= 1``.

    Returns:
        one ``(n_bins, num_frames(n_i, cqt.config))`` float32 CPU tensor per waveform.
    """
    import torch

    from s3t.cqt import compress_time

    if not waves:
        return []
    lengths = [int(w.shape[0]) for w in waves]
    if any(w.ndim != 1 for w in waves) or min(lengths) < 1:
        raise ValueError(f"waves must be non-empty 1-D arrays, got shapes {[w.shape for w in waves]}")
    cfg = cqt.config
    batch = torch.zeros(len(waves), max(lengths), dtype=torch.float32)  # (B, N_max)
    for row, wave in zip(batch, waves):
        row[: wave.shape[0]] = torch.from_numpy(wave)
    with torch.inference_mode():
        magnitude = cqt.magnitude(batch.to(cqt.device))  # (B, n_bins, 1 + N_max // hop)
        out = []
        for i, n in enumerate(lengths):
            clip = compress_time(magnitude[i, :, : 1 + n // cfg.hop_length], cfg.time_compression)
            out.append(torch.log(clip + cfg.eps).cpu())  # (n_bins, frames_i)
    return out


def cqt_streamed(cqt: CQT, path: str, *, part_s: float = STREAM_PART_S, margin_s: float = STREAM_MARGIN_S,
                 silence_threshold: float = 1e-5) -> torch.Tensor:
    """The compressed log-CQT ``(n_bins, frames)`` float32 CPU tensor of one file, decoded and transformed part by
    part (see the module docstring); equal to ``cqt_batch(cqt, [load_audio(path)])[0]`` up to float rounding.

    Raises:
        AudioError: the file (or a part of it) cannot be decoded, or the whole file is silent.
    """
    import torch

    from s3t.cqt import compress_time

    cfg = cqt.config
    rate, hop = cfg.sample_rate, cfg.hop_length
    part = max(1, round(part_s * rate / hop)) * hop  # samples, a multiple of the hop so parts meet on frame centres
    margin = max(1, round(margin_s * rate / hop)) * hop
    frames: list[torch.Tensor] = []
    peak, start = 0.0, 0
    with torch.inference_mode():
        while True:
            a = max(0, start - margin)
            wave = load_audio(path, rate, silence_threshold=0.0, start_s=a / rate, end_s=(start + part + margin) / rate)
            b = a + wave.shape[0]  # samples [a, b) of the file
            peak = max(peak, float(np.abs(wave).max()))
            at_end = b < start + part + margin
            magnitude = cqt.magnitude(torch.from_numpy(wave).to(cqt.device))[0]  # (n_bins, 1 + (b - a) // hop)
            # Global frame g is centred on sample g * hop; this part's frame j is global frame a // hop + j.
            last = b // hop + 1 if at_end else (start + part) // hop
            frames.append(magnitude[:, start // hop - a // hop : last - a // hop].cpu())
            if at_end:
                break
            start += part
    if peak < silence_threshold:
        raise AudioError(path, f"silent (peak {peak:.3g} < {silence_threshold:.3g})")
    return torch.log(compress_time(torch.cat(frames, dim=1), cfg.time_compression) + cfg.eps)


def _streamed(path: str, stream_seconds: float | None) -> bool:
    """Whether a file's header says it is longer than ``stream_seconds`` (files whose length only PyAV knows are
    decoded whole)."""
    if stream_seconds is None:
        return False
    import soundfile

    try:
        return soundfile.info(path.encode("utf-8", "surrogateescape")).duration > stream_seconds
    except (soundfile.SoundFileError, RuntimeError, OSError):
        return False


def featurize_files(
    paths: Sequence[str | os.PathLike],
    cqt: CQT,
    *,
    min_seconds: float = 0.0,
    workers: int = 0,
    batch_size: int = 16,
    batch_seconds: float = 30.0,
    stream_seconds: float | None = 300.0,
    on_file: Callable[[str], None] | None = None,
) -> tuple[list[torch.Tensor], list[str], list[Rejected]]:
    """Compressed log-CQT (n_bins, frames) float32 CPU tensors of every usable file, in memory.

    For corpora that do not fit in memory use :func:`s3t.shards.featurize_to_shards`.
    ``on_file(path)`` is called once per input file (for progress bars). A batch holds at most
    ``batch_size`` files and ``batch_size * batch_seconds`` seconds of padded samples; files longer
    than ``stream_seconds`` (by their header; None: none) are featurized by :func:`cqt_streamed`.

    Returns (features, kept paths in input order, rejected files with reasons).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not batch_seconds > 0:
        raise ValueError(f"batch_seconds must be > 0, got {batch_seconds!r}")
    budget = batch_size * batch_seconds * cqt.config.sample_rate  # padded samples per CQT call
    features, kept, rejected = [], [], []
    pending: list[Decoded] = []

    def flush() -> None:
        features.extend(cqt_batch(cqt, [d.wave for d in pending]))
        kept.extend(d.path for d in pending)
        pending.clear()

    paths = [str(p) for p in paths]
    streamed = {p for p in paths if _streamed(p, stream_seconds)}
    decoded = decode_files([p for p in paths if p not in streamed], cqt.config.sample_rate, min_seconds=min_seconds,
                           workers=workers)
    for path in paths:
        if path in streamed:
            flush()  # keeps the outputs in input order
            try:
                features.append(cqt_streamed(cqt, path))
                kept.append(path)
            except AudioError as err:
                rejected.append(Rejected(path, err.reason))
            item = None
        else:
            item = next(decoded)
        if item is not None:
            if item.wave is None:
                rejected.append(Rejected(item.path, item.reason))
            else:
                longest = max([item.wave.shape[0], *(d.wave.shape[0] for d in pending)])
                if pending and (len(pending) + 1) * longest > budget:
                    flush()
                pending.append(item)
                if len(pending) == batch_size:
                    flush()
        if on_file is not None:
            on_file(path)
    flush()
    return features, kept, rejected
