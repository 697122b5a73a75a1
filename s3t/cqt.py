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

Implementation: nnAudio's ``CQT1992v2`` (time-domain kernels applied as one strided
``conv1d``). Measured against ``librosa.cqt`` on 4 s of a chord plus noise (2 CPU threads,
nnAudio 0.3.4, librosa 0.11): both ``CQT1992v2`` and ``CQT2010v2`` (multi-rate, one
downsampling per octave) agree with librosa to a median relative error of about 3.5-4 % per
bin (peak-normalised magnitudes; the differences sit in the noise floor, the chord-tone bins
agree within 1 %) and correlation 0.9996. ``CQT1992v2`` was 1.75-2x faster than
``CQT2010v2`` on CPU (e.g. 733x vs 418x real time, batch of 16 x 30 s) and is a single
convolution, which maps well to GPUs. On that 2-core CPU it is no faster than
``librosa.cqt`` (0.5-1.0x its throughput, noisy, bench/bench_cqt.py); what it buys is batched
tensors on the training device without a NumPy round trip. Its kernels are deterministic
functions of the configuration, so they are kept as non-persistent buffers: they follow
``.to(device)`` but are not written into checkpoints (about 11 MB at the default setting).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from nnAudio.features.cqt import CQT1992v2
from torch import Tensor, nn

__all__ = ["CQT", "CQTConfig", "compress_time", "num_frames"]


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
        self.transform = CQT1992v2(
            sr=sample_rate,
            hop_length=hop_length,
            fmin=fmin,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            window="hann",
            center=True,
            pad_mode="constant",
            output_format="Magnitude",
            verbose=False,
        )
        for name in ("cqt_kernels_real", "cqt_kernels_imag", "lenghts"):
            self.transform.register_buffer(name, getattr(self.transform, name), persistent=False)

    @classmethod
    def from_config(cls, cfg: CQTConfig) -> CQT:
        """Build from a :class:`CQTConfig`."""
        return cls(**dataclasses.asdict(cfg))

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() not in (1, 2):
            raise ValueError(f"waveform must be (N,) or (B, N), got shape {tuple(waveform.shape)}")
        if not waveform.is_floating_point():
            raise ValueError(f"waveform must be a floating-point tensor, got {waveform.dtype}")
        if waveform.shape[-1] < 1:
            raise ValueError("waveform has no samples")
        kernels = self.transform.cqt_kernels_real
        if waveform.device != kernels.device:
            raise ValueError(
                f"waveform is on {waveform.device} but the CQT module is on {kernels.device}; "
                "move one with .to(...)"
            )
        waveform = waveform.to(torch.float32).reshape(-1, waveform.shape[-1])  # (B, N)
        magnitude = self.transform(waveform)  # (B, n_bins, 1 + N // hop)
        magnitude = compress_time(magnitude, self.config.time_compression)  # (B, n_bins, frames)
        return torch.log(magnitude + self.config.eps)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items())
