"""The S3T encoder as used after pre-training: clip spectrogram -> embedding (paper 2.1, 2.4).

An :class:`Encoder` chains the three parts a checkpoint must rebuild: per-clip
standardisation of the log-CQT, the pre-processor (Time Folding or Frequency Tiling) that
turns a (F, frames) spectrogram into the square model input, and the backbone. Its
:class:`ModelConfig` is plain data stored in every checkpoint, so ``s3t embed``,
``s3t probe`` and ``s3t predict`` rebuild exactly the network that was trained.

Choices where the paper is silent:

* How a whole clip becomes one vector (the paper says only "representations"). The config
  carries it (``embed_segments``, ``embed_pooling``) so every tool that loads a checkpoint
  embeds the way the run that made it chose on validation; see :mod:`s3t.embed`.
  ``stages`` pools each stage's map over all positions, so it keeps no absolute frequency:
  a Swin without a position embedding sees the same patterns alike wherever they sit on
  the CQT axis. ``bands`` keeps it: mean and standard deviation over time and within each
  octave of the CQT (rows of a stage's map weighted by how many input rows of each octave
  they cover, the pre-processor's :meth:`row_bins`), so a folded or tiled input pools each
  octave's rows from every fold or tile together.
* The log-CQT of each clip is standardised to zero mean
and unit variance over its valid frames before augmentation. This removes the recording
gain (which says nothing about genre) and makes 0.0 the clip mean, the natural fill value
for masking and shifting. It also hides the clip's level, which the hand-crafted statistics
keep; pre-training under one dataset-level map instead scored no better on music the encoder
never heard and worse on the task's folds in the earlier study (README.md at 18674ae).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from s3t.backbones import build_backbone
from s3t.cqt import CQTConfig
from s3t.preprocess import build_preprocessor


POOLINGS = ("final", "stages", "bands")
"""How :meth:`Encoder.embed` turns a view into a vector; see :mod:`s3t.embed`."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the encoder. Paper values by default (Swin-T, Time Folding, 256 x 256)."""

    backbone: str = "swin_t"
    preprocessor: str = "time_folding"
    input_size: int = 256
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    cqt: CQTConfig = field(default_factory=CQTConfig)
    embed_segments: int = 1  # consecutive segments a clip is cut into, each encoded, then averaged
    embed_pooling: str = "final"  # "final": pooled output; "stages": mean+std of every stage; "bands": per octave

    def __post_init__(self) -> None:
        if self.embed_segments < 1:
            raise ValueError(f"embed_segments must be >= 1, got {self.embed_segments}")
        if self.embed_pooling not in POOLINGS:
            raise ValueError(f"embed_pooling must be one of {', '.join(POOLINGS)}, got {self.embed_pooling!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        data["cqt"] = CQTConfig(**data.get("cqt", {}))
        data["backbone_kwargs"] = dict(data.get("backbone_kwargs", {}))
        return cls(**data)

    def build_backbone(self) -> nn.Module:
        return build_backbone(self.backbone, input_size=self.input_size, **self.backbone_kwargs)

    def build_preprocessor(self) -> nn.Module:
        return build_preprocessor(self.preprocessor, n_bins=self.cqt.n_bins, input_size=self.input_size)


def clip_moments(
    spec: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``sqrt(var + eps)`` of each clip over its valid frames.

    spec: (B, F, T); lengths: (B,) valid frames per clip, or None when all T frames are valid.
    Returns two (B, 1, 1) tensors of spec's dtype. The per-frame sums over F bins are
    float32, their sums over time float64, so the variance (mean square minus squared mean)
    keeps its precision.
    """
    B, F, T = spec.shape
    col_sum = spec.sum(dim=1).double()  # (B, T)
    col_sq = spec.square().sum(dim=1).double()  # (B, T); 10x faster on CPU than vector_norm
    if lengths is None:
        valid = torch.ones(B, T, dtype=torch.bool, device=spec.device)
    else:
        valid = torch.arange(T, device=spec.device)[None, :] < lengths[:, None].to(spec.device)  # (B, T)
    count = valid.sum(dim=1) * F  # (B,)
    mean = (col_sum * valid).sum(dim=1) / count
    var = ((col_sq * valid).sum(dim=1) / count - mean.square()).clamp(min=0.0)
    std = torch.sqrt(var + eps)
    return mean.to(spec.dtype).view(B, 1, 1), std.to(spec.dtype).view(B, 1, 1)


def band_weights(row_bins: torch.Tensor, rows: int, band_bins: int, n_bands: int) -> torch.Tensor:
    """How a map of ``rows`` rows over an input of S rows pools into frequency bands.

    row_bins: (S,) long, the CQT bin of each input row or -1 for rows that hold none (the
    pre-processor's ``row_bins``); map row h covers input rows [h * S / rows, (h + 1) * S / rows).
    Returns (rows, n_bands) float32: entry (h, k) is the share of band k (bins [k * band_bins,
    (k + 1) * band_bins)) of input rows that map row h covers, so every column sums to 1, or
    is all 0 for a band no input row holds (an input cut below the highest bins).
    """
    size = row_bins.numel()
    if rows < 1 or size % rows:
        raise ValueError(f"a map of {rows} rows does not tile an input of {size} rows")
    if band_bins < 1 or n_bands < 1:
        raise ValueError(f"band_bins and n_bands must be >= 1, got {band_bins} and {n_bands}")
    held = row_bins >= 0
    bands = torch.where(held, row_bins // band_bins, 0)
    if int(bands.max()) >= n_bands:
        raise ValueError(f"row bins reach band {int(bands.max())}, beyond the {n_bands} bands")
    onehot = torch.nn.functional.one_hot(bands, n_bands).float() * held[:, None]  # (S, n_bands)
    counts = onehot.view(rows, size // rows, n_bands).sum(1)  # (rows, n_bands) input rows of each band
    return counts / counts.sum(0, keepdim=True).clamp(min=1.0)


def band_moments(feature_map: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map, (H, K) :func:`band_weights` -> (B, 2 C K): per channel and band, the
    mean and the population standard deviation over the band's rows (weighted) and all W columns."""
    x = feature_map.float()
    w = weights.to(x.device) / x.shape[-1]
    mean = torch.einsum("bchw,hk->bck", x, w)
    square = torch.einsum("bchw,hk->bck", x.square(), w)
    std = (square - mean.square()).clamp(min=0.0).sqrt()
    return torch.cat([mean.flatten(1), std.flatten(1)], 1)


def standardize(spec: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance per clip over its valid frames; padded frames are set to 0.

    spec: (B, F, T); lengths: (B,) valid frames per clip, or None when all T frames are valid.
    """
    _, _, T = spec.shape
    mean, std = clip_moments(spec, lengths, eps)
    out = (spec - mean) / std
    if lengths is not None:
        padded = torch.arange(T, device=spec.device)[None, None, :] >= lengths[:, None, None].to(spec.device)
        out = out.masked_fill(padded, 0.0)
    return out


def pad_batch(clips: list[torch.Tensor], *, frames_major: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad clips (F, T_i) to (B, F, max T_i) and return them with lengths (B,).

    With ``frames_major`` the (B, F, T) result is a transposed view of a contiguous
    (B, T, F) tensor: the augmentation cuts crops as whole frames (rows), which needs that
    layout, and building it here costs the same copy as the usual one.
    """
    lengths = torch.tensor([c.shape[-1] for c in clips], dtype=torch.long)
    shape = (len(clips), int(lengths.max()), clips[0].shape[0])  # (B, T, F)
    if frames_major:
        out = clips[0].new_zeros(shape).transpose(1, 2)
    else:
        out = clips[0].new_zeros(shape[0], shape[2], shape[1])
    for i, clip in enumerate(clips):
        out[i, :, : clip.shape[-1]] = clip
    return out, lengths


class Encoder(nn.Module):
    """Pre-processor + backbone. forward: standardised spec (B, F, frames) -> embedding (B, num_features)."""

    def __init__(self, config: ModelConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.preprocessor = config.build_preprocessor()
        self.backbone = backbone if backbone is not None else config.build_backbone()
        self.num_features = int(self.backbone.num_features)
        self._band_weight_cache: dict[int, torch.Tensor] = {}  # map rows -> (rows, n_bands); not a buffer

    @property
    def frames(self) -> int:
        """Time frames the pre-processor expects per view."""
        return int(self.preprocessor.frames)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocessor(spec))

    @property
    def embedding_dim(self) -> int:
        """Length of :meth:`embed`'s vectors."""
        if self.config.embed_pooling == "final":
            return self.num_features
        return sum(self.stage_dims)

    @property
    def stage_dims(self) -> list[int]:
        """Lengths of the consecutive per-stage blocks of a ``stages`` or ``bands`` embedding:
        mean and std of each stage's channels, times the octave bands for ``bands``."""
        self._require_stages()
        per_channel = 2 * (self.n_bands if self.config.embed_pooling == "bands" else 1)
        return [per_channel * int(info["num_chs"]) for info in self.backbone.feature_info]

    @property
    def n_bands(self) -> int:
        """Octave bands of the ``bands`` pooling: ceil(n_bins / bins_per_octave)."""
        return -(-self.config.cqt.n_bins // self.config.cqt.bins_per_octave)

    def _require_stages(self) -> None:
        if not (hasattr(self.backbone, "forward_intermediates") and hasattr(self.backbone, "feature_info")):
            raise ValueError(
                f"backbone {self.config.backbone!r} has no per-stage features; use embed_pooling 'final'"
            )

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """Standardised spec (B, F, frames) -> (B, embedding_dim) with the config's pooling:
        ``final`` is :meth:`forward`; ``stages`` concatenates, for every backbone stage, the mean
        and the standard deviation of its feature map over all positions (time and frequency);
        ``bands`` does the same within each octave band (:func:`band_moments`), stage after stage."""
        if self.config.embed_pooling == "final":
            return self.forward(spec)
        return self.pool_stages(self.backbone, self.preprocessor(spec))

    def _band_weights(self, rows: int) -> torch.Tensor:
        """:func:`band_weights` of a stage map with ``rows`` rows, computed once per map height: they
        depend only on the pre-processor's geometry, and computing them reads a value back from the
        tensor (a host wait on a GPU, and a graph break under torch.compile)."""
        if rows not in self._band_weight_cache:
            self._band_weight_cache[rows] = band_weights(
                self.preprocessor.row_bins(), rows, self.config.cqt.bins_per_octave, self.n_bands)
        return self._band_weight_cache[rows]

    def pool_stages(self, backbone: nn.Module, image: torch.Tensor) -> torch.Tensor:
        """``backbone``'s stage maps of the pre-processed ``image`` (B, 1, S, S) -> (B, embedding_dim),
        pooled as ``stages`` or ``bands``. ``backbone`` has this encoder's architecture (MoCo's
        query and key backbones are pooled this way when pre-training's head sees the embedding)."""
        self._require_stages()
        maps = backbone.forward_intermediates(image, intermediates_only=True)
        if self.config.embed_pooling == "bands":
            return torch.cat([band_moments(m, self._band_weights(m.shape[2])) for m in maps], 1)
        return torch.cat([torch.cat([m.mean((2, 3)), m.std((2, 3), unbiased=False)], 1) for m in maps], 1)
