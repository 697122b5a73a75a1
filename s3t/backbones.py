"""Feature extractors for S3T: a registry of named backbones (timm style).

Every backbone maps a pre-processed spectrogram ``(B, in_chans, S, S)`` (``S = input_size``, the
square output of the Frequency Tiling / Time Folding pre-processor, paper Section 2.4) to a
fixed-size embedding ``(B, num_features)``; each model carries an int attribute ``num_features``.
Frequency runs along dim -2 (rows) and time along dim -1 (columns), as in the paper's
``F x T`` spectrogram.

Variants (paper Sections 3.2 and 3.3.2, Table 3):

- ``swin_t``: Swin-T (embed 96, depths {2, 2, 6, 2}, heads {3, 6, 12, 24}, drop path 0.1) on a
  256 x 256 single-channel input with window size 8, as in Section 3.2. 27.52 M parameters
  without a classifier head (timm 1.0.31 count; the ImageNet Swin-T has 28.3 M with its 1000-way
  head, 3 input channels and window 7).
- ``swin_cpu``: a 1.28 M-parameter Swin of the same input size and window for CPU runs and tests
  (patch 16, embed 48, depths {2, 2, 2}, heads {2, 4, 8}; stage grids 16, 8, 4). Not in the paper.
- Every Swin takes ``absolute_pos_embed`` (off by default, as in the paper's Swin-T), a learned
  embedding per patch position (:class:`PatchEmbedWithPosition`).
- ``resnet50``: timm's ResNet-50 with one input channel and global average pooling (Table 3).
- ``resnet_cpu``: a ResNet-18-shaped CNN (basic blocks, depths {2, 2, 2, 2}) narrowed to stage
  widths {8, 16, 32, 64}, so that its forward costs about what ``swin_cpu``'s does (0.8x the
  FLOPs): the "is it the Swin?" control of the recipe ablation. Not in the paper.
- ``cnn_bigru``: our stand-in for the paper's "MSNet-based BiGRU" (Table 3).

Ambiguities and choices:

- MSNet [20] is a multilevel instance-segmentation network for disaster damage in aerial video;
  the paper does not say how it was adapted to spectrograms or joined to the BiGRU [21]. We use a
  small convolutional front end (conv-BN-ReLU-max-pool blocks that pool frequency away and keep
  a time axis), a bidirectional GRU over time, and mean + max pooling over time. Its sizes are ours.
- The paper's Swin-T does not say whether windows may be padded. timm would pad a stage whose
  grid the window does not divide; we instead reject such a geometry at construction, so each
  stage is tiled exactly by its windows as in the original Swin design (a stage grid no larger
  than the window is one window, which timm handles without a shift).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "BACKBONES",
    "CnnBiGRU",
    "PatchEmbedWithPosition",
    "build_backbone",
    "check_swin_geometry",
    "cnn_bigru",
    "list_backbones",
    "register_backbone",
    "resnet50",
    "swin_cpu",
    "swin_stage_resolutions",
    "swin_t",
    "swin_transformer",
]

BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a backbone factory to :data:`BACKBONES` under ``name``."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered; pick another name")
        BACKBONES[name] = factory
        return factory

    return decorator


def list_backbones() -> list[str]:
    """Names of the registered backbones, sorted."""
    return sorted(BACKBONES)


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build the backbone registered as ``name`` with the factory's keyword arguments."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    return BACKBONES[name](**kwargs)


# --------------------------------------------------------------------------------------------
# Swin Transformer
# --------------------------------------------------------------------------------------------


def swin_stage_resolutions(input_size: int, patch_size: int, num_stages: int) -> tuple[int, ...]:
    """Side length of each stage's token grid: the patch grid, then halved by each patch merging."""
    grid = input_size // patch_size
    return tuple(grid // 2**i for i in range(num_stages))


def _window_fits(input_size: int, patch_size: int, window_size: int, num_stages: int) -> bool:
    return all(
        r % window_size == 0 or r <= window_size
        for r in swin_stage_resolutions(input_size, patch_size, num_stages)
    )


def _nearest(candidates: Sequence[int], target: int) -> int:
    # Ties go to the larger candidate: a larger window or input loses no context.
    return min(candidates, key=lambda c: (abs(c - target), -c))


def check_swin_geometry(input_size: int, patch_size: int, window_size: int, num_stages: int) -> None:
    """Raise ValueError unless every Swin stage grid is tiled exactly by ``window_size`` windows.

    The input must be divisible by ``patch_size * 2**(num_stages - 1)`` (a patch embedding, then
    ``num_stages - 1`` patch mergings that halve the grid), and each stage's grid must be a
    multiple of the window or no larger than it. The message names a window size and an input
    size that would work.
    """
    for label, value in (("input_size", input_size), ("patch_size", patch_size),
                         ("window_size", window_size), ("number of stages", num_stages)):
        if value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value}")
    stride = patch_size * 2 ** (num_stages - 1)
    if input_size % stride:
        fitting = [s for s in range(stride, 2 * input_size + stride * window_size + 1, stride)
                   if _window_fits(s, patch_size, window_size, num_stages)]
        raise ValueError(
            f"input_size {input_size} is not divisible by patch_size * 2**(stages - 1) = "
            f"{patch_size}*2**{num_stages - 1} = {stride} (the patch embedding and "
            f"{num_stages - 1} patch mergings each need an exact split); "
            f"use input_size {_nearest(fitting, input_size)}"
        )
    for stage, res in enumerate(swin_stage_resolutions(input_size, patch_size, num_stages), start=1):
        if res % window_size and res > window_size:
            grid = input_size // patch_size
            windows = [w for w in range(1, grid + 1) if _window_fits(input_size, patch_size, w, num_stages)]
            # base * window_size always fits (every stage grid is then a multiple of the window).
            inputs = [s for s in range(stride, max(2 * input_size, stride * window_size) + 1, stride)
                      if _window_fits(s, patch_size, window_size, num_stages)]
            raise ValueError(
                f"window_size {window_size} does not divide the {res}x{res} stage-{stage} grid of "
                f"input {input_size} with patch {patch_size}; use window_size "
                f"{_nearest(windows, window_size)} or input_size {_nearest(inputs, input_size)}"
            )


def swin_transformer(
    input_size: int = 256,
    patch_size: int = 4,
    embed_dim: int = 96,
    depths: Sequence[int] = (2, 2, 6, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    window_size: int = 8,
    drop_path_rate: float = 0.1,
    in_chans: int = 1,
    absolute_pos_embed: bool = False,
) -> nn.Module:
    """A timm Swin Transformer without classifier: ``(B, in_chans, S, S) -> (B, embed_dim * 2**(stages-1))``.

    The geometry is checked by :func:`check_swin_geometry` before timm is called, so a bad
    ``input_size`` / ``patch_size`` / ``window_size`` gets a message that says what to change.
    ``absolute_pos_embed`` adds a learned embedding per patch position after the patch
    embedding (:class:`PatchEmbedWithPosition`, the original Swin's ``ape`` option).
    """
    from timm.models.swin_transformer import SwinTransformer

    depths, num_heads = tuple(depths), tuple(num_heads)
    if len(depths) != len(num_heads) or not depths:
        raise ValueError(
            f"depths {depths} and num_heads {num_heads} must be non-empty and of equal length "
            "(one entry per stage)"
        )
    for stage, heads in enumerate(num_heads):
        dim = embed_dim * 2**stage
        if heads < 1 or dim % heads:
            raise ValueError(
                f"stage {stage + 1} has {dim} channels (embed_dim {embed_dim} * 2**{stage}), which "
                f"{heads} heads do not split evenly; use a head count that divides {dim}"
            )
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    check_swin_geometry(input_size, patch_size, window_size, len(depths))
    model = SwinTransformer(
        img_size=input_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=0,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
        window_size=window_size,
        drop_path_rate=drop_path_rate,
    )
    if absolute_pos_embed:
        grid = input_size // patch_size
        model.patch_embed = PatchEmbedWithPosition(model.patch_embed, (grid, grid), embed_dim)
    return model


class PatchEmbedWithPosition(nn.Module):
    """A patch embedding followed by a learned absolute position embedding (Swin's ``ape``).

    ``(B, C_in, S, S) -> (B, H, W, embed_dim)`` (timm's NHWC token grid). Swin's attention has only
    a relative position bias inside each window, so without this a token cannot tell which
    frequency band it holds: a 16-bin patch of bass and one of treble with the same shape look
    alike, and pooling over positions keeps no spectral envelope. The original Swin offers
    the embedding as an option (off by default for images); its initialisation here is the same
    (truncated normal, std 0.02).
    """

    def __init__(self, embed: nn.Module, grid: tuple[int, int], embed_dim: int) -> None:
        super().__init__()
        self.embed = embed
        self.pos = nn.Parameter(torch.zeros(1, *grid, embed_dim))  # (1, H, W, C)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x) + self.pos


@register_backbone("swin_t")
def swin_t(
    input_size: int = 256,
    window_size: int = 8,
    drop_path_rate: float = 0.1,
    in_chans: int = 1,
    absolute_pos_embed: bool = False,
) -> nn.Module:
    """Swin-T as configured in paper Section 3.2: 27.52 M parameters, ``num_features`` 768."""
    return swin_transformer(
        input_size=input_size,
        patch_size=4,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=window_size,
        drop_path_rate=drop_path_rate,
        in_chans=in_chans,
        absolute_pos_embed=absolute_pos_embed,
    )


@register_backbone("swin_cpu")
def swin_cpu(
    input_size: int = 256,
    window_size: int = 8,
    drop_path_rate: float = 0.1,
    in_chans: int = 1,
    absolute_pos_embed: bool = False,
    patch_size: int = 16,
    embed_dim: int = 48,
    depths: Sequence[int] = (2, 2, 2),
    num_heads: Sequence[int] = (2, 4, 8),
) -> nn.Module:
    """A small Swin for CPU runs: same input and window as Swin-T, 1.28 M parameters, ``num_features`` 192.

    Patch 16 turns a 256 x 256 input into a 16 x 16 grid (stages 16, 8, 4: the first two tiled by
    8 x 8 windows, the last one window). Patch 16 rather than 8 because it measured 2.4x faster
    forward + backward at a similar parameter count (batch 32 on 2 loaded CPU cores: 1.00 s vs
    2.41 s for patch 8 / embed 32), which is what lets pre-training fit a CPU budget of minutes.
    ``patch_size``, ``embed_dim``, ``depths`` and ``num_heads`` are open for the recipe
    ablation (README, "Pre-training recipe at this scale"); ``num_features`` is
    ``embed_dim * 2**(len(depths) - 1)``.
    """
    return swin_transformer(
        input_size=input_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
        window_size=window_size,
        drop_path_rate=drop_path_rate,
        in_chans=in_chans,
        absolute_pos_embed=absolute_pos_embed,
    )


# --------------------------------------------------------------------------------------------
# CNN backbones (Table 3 comparisons)
# --------------------------------------------------------------------------------------------


@register_backbone("resnet50")
def resnet50(input_size: int = 256, in_chans: int = 1) -> nn.Module:
    """timm ResNet-50, global average pooling, no classifier: 23.50 M parameters, ``num_features`` 2048.

    ResNet is size-agnostic; ``input_size`` is only checked (at least 32, the network's total
    stride) so that every backbone is built from the same arguments.
    """
    import timm

    if input_size < 32:
        raise ValueError(
            f"input_size {input_size} is smaller than ResNet-50's total stride of 32; use input_size >= 32"
        )
    return timm.create_model(
        "resnet50", pretrained=False, in_chans=in_chans, num_classes=0, global_pool="avg"
    )


@register_backbone("resnet_cpu")
def resnet_cpu(
    input_size: int = 256,
    in_chans: int = 1,
    *,
    width: int = 8,
    layers: Sequence[int] = (2, 2, 2, 2),
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """timm ResNet with basic blocks, stage widths ``width * (1, 2, 4, 8)``, global average
    pooling, no classifier; ``num_features = 8 * width``.

    The stem is timm's "deep" one (three 3 x 3 convolutions, ``width / 2`` channels), since the
    plain 7 x 7 stem has 64 channels whatever the width and would cost more than the rest. At the
    defaults (ResNet-18's depths, width 8) a 256 x 256 forward is 0.085 GFLOP against
    ``swin_cpu``'s 0.106 (``torch.utils.flop_counter.FlopCounterMode``, one sample; width 10 would
    be 0.132), with 0.18 M parameters against 1.28 M: a convolutional network of about the same
    cost, the control the recipe ablation compares the Swin with. Per-stage features
    (``forward_intermediates``) work as for the Swins, so ``embed_pooling: stages`` applies.
    """
    from timm.models.resnet import BasicBlock, ResNet

    if input_size < 32:
        raise ValueError(f"input_size {input_size} is smaller than the ResNet's total stride of 32; use input_size >= 32")
    if isinstance(width, bool) or not isinstance(width, int) or width < 2 or width % 2:
        raise ValueError(f"width must be an even integer >= 2 (the stem has width / 2 channels), got {width!r}")
    return ResNet(
        BasicBlock, list(layers), num_classes=0, in_chans=in_chans, global_pool="avg", stem_type="deep",
        stem_width=width // 2, channels=(width, 2 * width, 4 * width, 8 * width), drop_path_rate=drop_path_rate,
    )


class CnnBiGRU(nn.Module):
    """Convolutional front end + bidirectional GRU over time: our stand-in for MSNet-BiGRU.

    Block ``i`` is conv3x3 -> BatchNorm -> ReLU -> max-pool that halves frequency, and also time
    for the first ``time_pool_blocks`` blocks. What is left of frequency is averaged away, the
    GRU reads the ``S / 2**time_pool_blocks`` time steps in both directions, and the outputs are
    mean- and max-pooled over time and concatenated.

    Shapes: ``(B, in_chans, S, S) -> (B, C, S / 2**n, S / 2**t) -> (B, T', C) -> (B, T', 2H)
    -> (B, 4H)``, with ``n = len(channels)``, ``t = time_pool_blocks``, ``H = gru_hidden``.
    """

    def __init__(
        self,
        input_size: int = 256,
        in_chans: int = 1,
        channels: Sequence[int] = (32, 64, 128, 256),
        time_pool_blocks: int = 2,
        gru_hidden: int = 256,
        gru_layers: int = 1,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty sequence of positive ints, got {channels}")
        if not 0 <= time_pool_blocks <= len(channels):
            raise ValueError(
                f"time_pool_blocks must be between 0 and the number of blocks ({len(channels)}), "
                f"got {time_pool_blocks}"
            )
        if input_size < 2 ** len(channels):
            raise ValueError(
                f"input_size {input_size} is too small for {len(channels)} blocks that each halve "
                f"frequency; use input_size >= {2 ** len(channels)} or fewer channels"
            )
        if gru_hidden < 1 or gru_layers < 1:
            raise ValueError(f"gru_hidden and gru_layers must be >= 1, got {gru_hidden} and {gru_layers}")
        blocks = []
        prev = in_chans
        for i, ch in enumerate(channels):
            blocks += [
                nn.Conv2d(prev, ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=(2, 2 if i < time_pool_blocks else 1)),
            ]
            prev = ch
        self.features = nn.Sequential(*blocks)
        self.gru = nn.GRU(prev, gru_hidden, num_layers=gru_layers, batch_first=True, bidirectional=True)
        self.num_features = 4 * gru_hidden

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, S, S) -> (B, S / 2**time_pool_blocks, 2 * gru_hidden)`` GRU outputs over time."""
        x = self.features(x)  # (B, C, F', T')
        x = x.mean(dim=2).transpose(1, 2)  # (B, T', C)
        out, _ = self.gru(x)  # (B, T', 2H)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, S, S) -> (B, num_features)``."""
        seq = self.forward_sequence(x)  # (B, T', 2H)
        return torch.cat([seq.mean(dim=1), seq.amax(dim=1)], dim=1)  # (B, 4H)


@register_backbone("cnn_bigru")
def cnn_bigru(
    input_size: int = 256,
    in_chans: int = 1,
    channels: Sequence[int] = (32, 64, 128, 256),
    time_pool_blocks: int = 2,
    gru_hidden: int = 256,
    gru_layers: int = 1,
) -> nn.Module:
    """Stand-in for the paper's MSNet-BiGRU (Table 3): 1.18 M parameters, ``num_features`` 1024."""
    return CnnBiGRU(
        input_size=input_size,
        in_chans=in_chans,
        channels=channels,
        time_pool_blocks=time_pool_blocks,
        gru_hidden=gru_hidden,
        gru_layers=gru_layers,
    )
