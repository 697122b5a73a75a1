"""Constant-Q transform front end (paper Section 3.2, "Model Input").

The paper: each sample is resampled to 22.05 kHz and "converted to a 84-dim constant-Q
transform (CQT) spectrogram, with the number of bins per octave as 12, the hop size as 512,
and the Hann window as the windowing function. [...] we further compressed the CQT
spectrogram by a factor of 100 along the time axis."

Where the paper is silent, we chose:

* Lowest bin ``fmin = 32.70 Hz`` (C1, librosa's default), so the 84 bins span C1..B7 and
  bin ``k`` is centred at ``fmin * 2**(k / 12)``: A4 = 440 Hz is bin 45, A2 = 110 Hz bin 21.
* Magnitude (not power), natural log with a floor: ``log(|CQT| + eps)``, ``eps = 1e-6``.
  The paper does not say whether it takes a log; a log (dB-like) scale is the standard input
  for spectrogram models and keeps the dynamic range of music usable.
* Time compression. "Compressed by a factor of 100 along the time axis" does not say how.
  We read it as average pooling of the *linear magnitude* over non-overlapping blocks of
  ``factor`` hops (:func:`compress_time`), so one output frame spans
  ``factor * hop / sr`` seconds (100 * 512 / 22050 = 2.32 s). Pooling happens before the
  log so it averages energy-like magnitudes rather than log-magnitudes (averaging logs would
  let near-silent frames dominate). A trailing partial block is averaged over the frames it
  has, so no audio is dropped. ``factor=1`` is the identity.
* Framing follows librosa: the signal is centred by zero-padding half the longest kernel on
  each side, giving ``1 + num_samples // hop`` frames before compression. Zero padding (not
  nnAudio's default reflect padding, which raises for clips of at most half the longest
  kernel, 8192 samples = 0.37 s at C1) also makes clips of any positive length work.

Implementation: multi-rate, as librosa computes it (one octave at a time, each on the signal
decimated to the lowest rate that still holds it), but batched in torch so the same code runs
on a GPU. Each octave's 12 kernels are time-domain Hann-windowed complex exponentials at that
octave's rate, at most ``ceil(Q * sr / f)`` = 89 samples long at the default setting, applied
as one matrix product on strided windows; the decimated signals come from one real FFT of the
whole padded clip, cut to each rate's band (a raised-cosine taper over the top 20 % of the band against
time-domain ringing) and inverse-transformed at that rate, so there is no aliasing and no
cascade of filters. Kernels are unit-L1 and scaled by ``sqrt(L_k)`` with ``L_k`` the
full-rate length of bin k's kernel: the output equals nnAudio's ``CQT1992v2`` with librosa
normalisation (our front end until December 2026: one convolution with kernels up to 16,384
samples long), to a median relative difference of 0.30 % and correlation 0.99998 on music-like
clips (``python bench/bench_cqt.py`` prints both; tests/test_cqt.py states the bounds). That
single long convolution ran at 0.44-1.0x ``librosa.cqt``'s speed on 2 CPU cores; this one is
measured in bench/bench_cqt.py and BENCHMARKS.md. Octaves are only decimated while the hop stays an
integer (``hop_length`` divisible by 2 for each decimation); lower octaves beyond that keep
the last rate with longer kernels. The kernels are deterministic functions of the
configuration, so they are non-persistent buffers: they follow ``.to(device)`` but are not
written into checkpoints.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from scipy.signal import get_window
from torch import Tensor, nn

__all__ = ["CQT", "CQTConfig", "IMPLEMENTATION", "Octave", "compress_time", "multirate_cqt", "num_frames", "octave_plan"]

IMPLEMENTATION = "multirate-fft64-1"
"""Names the transform's arithmetic; changed whenever its numbers change (not only its settings),
so a feature store made by another implementation is recognised as stale (``s3t.shards``'s plan)."""


@dataclasses.dataclass(frozen=True)
class CQTConfig:
    """CQT front-end settings; defaults are the paper's (Section 3.2) with ``time_compression=1``.

    Attributes:
        sample_rate: input sampling rate in Hz (paper: 22050).
        n_bins: number of frequency bins (paper: 84).
        bins_per_octave: bins per octave (paper: 12).
        hop_length: hop between CQT frames in samples (paper: 512).
        fmin: centre frequency of the lowest bin in Hz (our choice: C1 = 32.70 Hz).
        time_compression: frames averaged into one output frame (paper: 100).
        eps: floor added to the magnitude before the natural log.
    """

    sample_rate: int = 22050
    n_bins: int = 84
    bins_per_octave: int = 12
    hop_length: int = 512
    fmin: float = 32.70
    time_compression: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_bins", "bins_per_octave", "hop_length", "time_compression"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.fmin > 0:
            raise ValueError(f"fmin must be > 0 Hz, got {self.fmin!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        top_edge = self.fmin * 2.0 ** (self.n_bins / self.bins_per_octave)
        nyquist = self.sample_rate / 2
        if top_edge >= nyquist:
            raise ValueError(
                f"the top CQT bin reaches {top_edge:.1f} Hz, at or above the Nyquist frequency "
                f"{nyquist:.1f} Hz; lower fmin or n_bins, or raise sample_rate"
            )

    @property
    def frames_per_second(self) -> float:
        """Output frames per second of audio, after time compression."""
        return self.sample_rate / self.hop_length / self.time_compression


def num_frames(num_samples: int, cfg: CQTConfig) -> int:
    """Number of output frames :class:`CQT` produces for ``num_samples`` input samples:
    ``ceil((1 + num_samples // hop_length) / time_compression)``."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    return math.ceil((1 + num_samples // cfg.hop_length) / cfg.time_compression)


def compress_time(spec: Tensor, factor: int) -> Tensor:
    """Average non-overlapping blocks of ``factor`` frames along the last axis.

    Args:
        spec: ``(..., T)`` with ``T >= 1``, a linear-magnitude spectrogram.
        factor: block length in frames (``>= 1``); ``1`` returns ``spec`` unchanged.

    Returns:
        ``(..., ceil(T / factor))``; the last block, if partial, is the mean of the frames it has.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    frames = spec.shape[-1]
    if frames < 1:
        raise ValueError(f"spec needs at least one frame on its last axis, got shape {tuple(spec.shape)}")
    if factor == 1:
        return spec
    blocks = math.ceil(frames / factor)
    padded = nn.functional.pad(spec, (0, blocks * factor - frames))  # (..., blocks * factor)
    sums = padded.reshape(*spec.shape[:-1], blocks, factor).sum(dim=-1)  # (..., blocks)
    counts = torch.full((blocks,), float(factor), dtype=sums.dtype, device=sums.device)
    counts[-1] = frames - (blocks - 1) * factor
    return sums / counts


@dataclasses.dataclass(frozen=True)
class Octave:
    """One group of up to ``bins_per_octave`` bins computed at one decimated rate.

    Attributes:
        first_bin: index of its lowest bin in the full ``(n_bins,)`` axis.
        n_bins: bins in the group.
        decimation: the group is computed at ``sample_rate / 2**decimation`` Hz.
        hop: hop in samples at that rate (``hop_length / 2**decimation``).
        width: kernel width in samples at that rate (its lowest bin's kernel length).
    """

    first_bin: int
    n_bins: int
    decimation: int
    hop: int
    width: int


def octave_plan(cfg: CQTConfig) -> tuple[list[Octave], list[np.ndarray]]:
    """Split the bins into octaves (top octave first, at the full rate) and build their kernels.

    Bin k is centred at ``fmin * 2**(k / bins_per_octave)`` Hz with kernel length
    ``ceil(Q * rate / f_k)`` samples, ``Q = 1 / (2**(1 / bins_per_octave) - 1)`` (librosa's and
    nnAudio's filter_scale 1). Octave ``o`` is decimated ``min(o, v)`` times, ``v`` the number
    of times ``hop_length`` halves to an integer.

    Returns:
        the octaves, and per octave a float32 array ``(2 * n_bins, width)``: the real and
        imaginary parts of each bin's kernel on consecutive rows, centred at ``width // 2``,
        unit-L1 and scaled by the square root of the full-rate kernel length.
    """
    q = 1.0 / (2.0 ** (1.0 / cfg.bins_per_octave) - 1.0)
    freqs = cfg.fmin * 2.0 ** (np.arange(cfg.n_bins) / cfg.bins_per_octave)  # (n_bins,) Hz
    n_octaves = math.ceil(cfg.n_bins / cfg.bins_per_octave)
    halvings = (cfg.hop_length & -cfg.hop_length).bit_length() - 1
    octaves, kernels = [], []
    for o in range(n_octaves):
        top = cfg.n_bins - o * cfg.bins_per_octave
        first = max(0, top - cfg.bins_per_octave)
        decimation = min(o, halvings)
        rate = cfg.sample_rate / 2**decimation
        lengths = np.ceil(q * rate / freqs[first:top]).astype(int)
        full_lengths = np.ceil(q * cfg.sample_rate / freqs[first:top])
        width = int(lengths.max())
        kernel = np.zeros((2 * (top - first), width), dtype=np.float64)
        for i, (freq, length) in enumerate(zip(freqs[first:top], lengths)):
            n = np.arange(-(length // 2), length - length // 2)  # sample offsets from the centre
            sig = get_window("hann", length, fftbins=True) * np.exp(2j * np.pi * freq * n / rate)
            sig *= math.sqrt(full_lengths[i]) / np.abs(sig).sum()
            start = width // 2 - length // 2
            kernel[2 * i, start : start + length] = sig.real
            kernel[2 * i + 1, start : start + length] = sig.imag
        octaves.append(Octave(first, top - first, decimation, cfg.hop_length // 2**decimation, width))
        kernels.append(kernel.astype(np.float32))
    return octaves, kernels


def _fft_size(minimum: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``minimum`` and has no prime factor above 5
    once ``multiple`` is divided out (fast for pocketfft and cuFFT)."""
    n = -(-minimum // multiple)
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n * multiple
        n += 1


def multirate_cqt(waveform: Tensor, octaves: list[Octave], kernels: list[Tensor], hop_length: int) -> Tensor:
    """Linear CQT magnitude of a batch, one octave at a time on decimated signals.

    Args:
        waveform: ``(B, N)`` float32, ``N >= 1``; zero outside the clip (centred frames).
        octaves, kernels: from :func:`octave_plan` (kernels as tensors on the waveform's device).
        hop_length: hop in samples at the input rate.

    Returns:
        ``(B, n_bins, 1 + N // hop_length)`` float32, frame t centred on sample ``t * hop_length``.
    """
    batch, n = waveform.shape
    frames = 1 + n // hop_length
    step = 2 ** max(o.decimation for o in octaves)
    # Zeros on both sides hold every kernel's half-width (in input samples) plus room for the
    # taper's ringing, so the FFT's circular wrap never reaches a sample a frame reads.
    reach = max((o.width // 2 + 1) * 2**o.decimation for o in octaves) + 64 * step
    left = -(-reach // step) * step
    size = _fft_size(left + n + reach + hop_length, step)
    padded = nn.functional.pad(waveform, (left, size - left - n))  # (B, size)
    # In float64: float32 FFT roundoff (~1e-7 of the clip's peak, spread over every sample)
    # would lift digital silence from the eps floor and make a clip's features depend on the
    # length of the batch it was padded into.
    spectrum = torch.fft.rfft(padded.double()) if step > 1 else None  # (B, size // 2 + 1)
    signals: dict[int, Tensor] = {0: padded}
    out = waveform.new_empty(batch, sum(o.n_bins for o in octaves), frames)
    for octave, kernel in zip(octaves, kernels):
        d = octave.decimation
        if d not in signals:
            keep = size // 2**d // 2 + 1  # bins up to the decimated rate's Nyquist frequency
            taper = _band_taper(keep, spectrum.device) / 2**d  # the inverse at 1 / 2**d the length
            signals[d] = torch.fft.irfft(spectrum[:, :keep] * taper, n=size // 2**d).float()
        signal = signals[d]  # (B, size / 2**d); input sample j at index (left + j) / 2**d
        begin = left // 2**d - octave.width // 2
        span = (frames - 1) * octave.hop + octave.width
        windows = signal[:, begin : begin + span].unfold(-1, octave.width, octave.hop)  # (B, frames, width)
        resp = (windows @ kernel.T).view(batch, frames, octave.n_bins, 2)  # (B, frames, bins, re/im)
        out[:, octave.first_bin : octave.first_bin + octave.n_bins] = resp.square().sum(dim=-1).sqrt().transpose(1, 2)
    return out


def _band_taper(bins: int, device: torch.device) -> Tensor:
    """``(bins,)`` weights: 1 up to 80 % of the band, a raised-cosine fall to 0 at its top."""
    f = torch.linspace(0.0, 1.0, bins, device=device)
    return torch.where(f <= 0.8, 1.0, 0.5 + 0.5 * torch.cos(torch.pi * (f - 0.8) / 0.2))


class CQT(nn.Module):
    """Waveform -> log-magnitude, time-compressed CQT spectrogram (paper Section 3.2).

    Args: see :class:`CQTConfig` (same names, same defaults).

    Shapes:
        input ``(B, N)`` or ``(N,)`` waveform at ``sample_rate`` Hz, any floating dtype
        (computed in float32), on the module's device, ``N >= 1``;
        output ``(B, n_bins, num_frames(N, config))`` float32 (``B = 1`` for 1-D input).
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        hop_length: int = 512,
        fmin: float = 32.70,
        time_compression: int = 1,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.config = CQTConfig(
            sample_rate=sample_rate,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            hop_length=hop_length,
            fmin=fmin,
            time_compression=time_compression,
            eps=eps,
        )
        self.octaves, kernels = octave_plan(self.config)
        for i, kernel in enumerate(kernels):
            self.register_buffer(f"kernels_{i}", torch.from_numpy(kernel), persistent=False)

    @classmethod
    def from_config(cls, cfg: CQTConfig) -> CQT:
        """Build from a :class:`CQTConfig`."""
        return cls(**dataclasses.asdict(cfg))

    @property
    def device(self) -> torch.device:
        """Where the kernels (and so the computation) are."""
        return self.kernels_0.device

    def magnitude(self, waveform: Tensor) -> Tensor:
        """``(B, N)`` or ``(N,)`` waveform -> ``(B, n_bins, 1 + N // hop_length)`` linear magnitude,
        before time compression and the log."""
        if waveform.dim() not in (1, 2):
            raise ValueError(f"waveform must be (N,) or (B, N), got shape {tuple(waveform.shape)}")
        if not waveform.is_floating_point():
            raise ValueError(f"waveform must be a floating-point tensor, got {waveform.dtype}")
        if waveform.shape[-1] < 1:
            raise ValueError("waveform has no samples")
        if waveform.device != self.device:
            raise ValueError(
                f"waveform is on {waveform.device} but the CQT module is on {self.device}; "
                "move one with .to(...)"
            )
        waveform = waveform.to(torch.float32).reshape(-1, waveform.shape[-1])  # (B, N)
        kernels = [getattr(self, f"kernels_{i}") for i in range(len(self.octaves))]
        return multirate_cqt(waveform, self.octaves, kernels, self.config.hop_length)

    def forward(self, waveform: Tensor) -> Tensor:
        magnitude = self.magnitude(waveform)  # (B, n_bins, 1 + N // hop)
        magnitude = compress_time(magnitude, self.config.time_compression)  # (B, n_bins, frames)
        return torch.log(magnitude + self.config.eps)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items())
