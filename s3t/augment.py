"""Music data augmentation for the two contrastive views (paper 2.3).

The paper's pipeline: *Random Multi-crop* cuts two crops of random length from a clip,
then four transforms are applied to each crop independently, each with its own
probability p, in this order (the order the paper lists them, see ``PIPELINE_ORDER``):

1. Random Frequency Masking  (p = 0.5): N ~ U{1..5} segments of F ~ U{5..30} bins.
2. Random Time Masking       (p = 0.5): N ~ U{1..10} segments of t = T * r frames,
   r ~ U[0.01, 0.2], total masked length <= 0.4 * T.
3. Time Warping              (p = 0.4): SpecAugment-style (Park et al. 2019), W = 10.
4. Random Shifting           (p = 0.4): pitch or time shift by s ~ U{1..10} steps.

Input convention: ``x`` is a batch of per-clip standardised log-CQT spectrograms,
shape (B, F, T) (F frequency bins, T frames), so 0.0 is the clip mean and the natural
fill value. ``lengths`` (LongTensor (B,), optional) counts the valid frames of each
right-padded item. Every random draw comes from ``generator`` (a ``torch.Generator`` on
``x.device``; ``None`` falls back to torch's default generator for that device), and every
op is a batched tensor op on ``x.device`` with no Python loop over batch items.

Each transform returns ``(out, params)``. Its ``draw_*`` twin makes the same draws and returns
what to apply instead of ``out`` (a mask, source positions, or the params alone), so
:class:`MusicAugment` applies both masks in one pass and the warp and the shift in one
resampling; ``params``
maps names to tensors of per-item drawn values, always including ``applied`` (bool, (B,)). Values of items that were not
transformed are 0 (``axis``: -1), and per-segment tables are padded with 0 beyond the
kept segments, so ``params[k][params["applied"]]`` holds exactly what was applied.

Ambiguities in the paper and what we chose:

* Multi-crop: the paper gives crop lengths ``T * r`` but not how crops of different
  lengths become a fixed-size model input. We resize each crop to ``out_frames`` frames
  along time by linear interpolation (corners aligned: the first and last output frames
  are the first and last crop frames); frequency is untouched. Crop length is
  ``max(1, round(len * r))`` (``torch.round``, half to even), start uniform over the valid
  frames, so a crop never reads padding. The two crops are drawn independently and may
  overlap.
* All four transforms run after the resize, so the ``T`` of time masking and warping
  is ``out_frames``.
* Frequency masking: "total mask length constrained" gives no bound. We cap the summed
  segment widths at ``max_total`` bins (default ``floor(0.4 * F)``, mirroring the time-mask
  bound of 0.4 * T; 33 bins for F = 84). Time masking enforces its 0.4 * T bound the same
  way. Segments are considered in draw order and the first one that would push the total
  past the cap, and every later one, are dropped (``n_drawn`` vs ``n`` in params).
  Segments may overlap, so the masked area is at most ``total``.
* Time masking: a segment length ``round(len * r)`` may be 0 for very short items (a
  no-op segment); we keep the paper's formula rather than inflate it.
* Time warping: positions are frame indices 0..T-1 and both ends stay fixed; the centre
  c is drawn from [W, T-1-W) and the signed displacement from (-W, W) (|d| = W * u,
  u ~ U[0, 1)), so the warped point c + d stays strictly inside (0, T-1). The paper's
  "(W, T-W)" is the same interval measured on frame edges. If T - 1 <= 2W there is no
  room for a warp and the op is skipped for the whole batch (``applied`` all False).
  Warping is a piecewise-linear time resampling with linear interpolation.
* Random shifting: "pitch shift or time shift" is chosen with equal odds; the direction
  too. The shift is not circular: vacated cells get ``fill``, because rolling the
  frequency axis would wrap the bass into the treble (and rolling time would glue the
  clip's end onto its start). Positive steps move content to higher bins / later frames.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PIPELINE_ORDER = ("freq_mask", "time_mask", "time_warp", "shift")
"""Order of the per-view transforms in :class:`MusicAugment` (paper 2.3 list order)."""

Params = dict[str, Tensor]


# --------------------------------------------------------------------------- validation


def _check_batch(x: Tensor) -> None:
    if x.dim() != 3 or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating-point (B, F, T) spectrogram batch, got dtype {x.dtype} and shape {tuple(x.shape)}"
        )


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None:
        return
    gen = generator.device
    same_index = gen.index is None or device.index is None or gen.index == device.index
    if gen.type != device.type or not same_index:
        raise ValueError(f"generator is on {gen} but x is on {device}; create the generator on x.device")


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def _check_int_range(name: str, rng: tuple[int, int], minimum: int = 1) -> None:
    if len(rng) != 2 or rng[0] > rng[1] or rng[0] < minimum or any(int(v) != v for v in rng):
        raise ValueError(f"{name} must be an integer range (lo, hi) with {minimum} <= lo <= hi, got {rng}")


def _check_ratio_range(name: str, rng: tuple[float, float]) -> None:
    if len(rng) != 2 or not 0.0 < rng[0] <= rng[1] <= 1.0:
        raise ValueError(f"{name} must be a range (lo, hi) with 0 < lo <= hi <= 1, got {rng}")


def _valid_lengths(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Valid frames per item as a LongTensor (B,) on x.device (all T when ``lengths`` is None).

    The values are range-checked when ``lengths`` is on the CPU (as the training loop passes it);
    on an accelerator that check would make the host wait for the device at every step.
    """
    batch, _, frames = x.shape
    if lengths is None:
        return torch.full((batch,), frames, dtype=torch.long, device=x.device)
    if lengths.shape != (batch,) or lengths.is_floating_point() or lengths.is_complex():
        raise ValueError(
            f"lengths must be an integer tensor of shape ({batch},), got {lengths.dtype} {tuple(lengths.shape)}"
        )
    if lengths.device.type == "cpu":  # on an accelerator the check would make the host wait every step
        if bool(((lengths < 1) | (lengths > frames)).any()):
            raise ValueError(
                f"every length must be in [1, T={frames}], got min {int(lengths.min())} max {int(lengths.max())}"
            )
    return lengths.to(device=x.device, dtype=torch.long)


# --------------------------------------------------------------------------- random draws


def _rand(shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) float32 on x.device."""
    return torch.rand(shape, generator=generator, device=x.device, dtype=torch.float32)


def _randint(lo: int, hi: int, shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U{lo..hi} (both inclusive) int64 on x.device."""
    return torch.randint(lo, hi + 1, shape, generator=generator, device=x.device)


def _uniform_start(room: Tensor, u: Tensor) -> Tensor:
    """Start uniform over {0..room} from u ~ U[0, 1); room is a non-negative LongTensor."""
    return torch.minimum((u * (room + 1).float()).long(), room)


# --------------------------------------------------------------------------- tensor helpers


def _resample_time(x: Tensor, pos: Tensor, last: Tensor) -> Tensor:
    """Linear interpolation of x (B, F, T) at fractional frames pos (B, T_out) -> (B, F, T_out).

    ``last`` (B, 1) or (B, T_out) is the highest frame index each output frame may read, so
    an interpolation never touches frames beyond it (padding, or frames outside a crop). An
    integer position reads its frame exactly.

    Frames are copied as whole rows of a (B, T, F) layout, several times faster on CPU than
    an element-wise ``gather`` along T; the result is a (B, F, T_out) view of a contiguous
    (B, T_out, F) tensor, so a following resample reads it without a copy.
    """
    batch = x.shape[0]
    pos = torch.minimum(pos.clamp(min=0.0), last.float())
    i0 = torch.minimum(pos.floor().long(), last)  # (B, T_out)
    i1 = torch.minimum(i0 + 1, last)
    frac = (pos - i0.float()).unsqueeze(2).to(x.dtype)  # (B, T_out, 1)
    rows = x.transpose(1, 2).contiguous()  # (B, T, F); free when x is such a view
    item = torch.arange(batch, device=x.device).unsqueeze(1)  # (B, 1)
    v0, v1 = rows[item, i0], rows[item, i1]  # (B, T_out, F)
    return torch.lerp(v0, v1, frac.expand_as(v0)).transpose(1, 2)


def _segment_mask(starts: Tensor, widths: Tensor, size: int) -> Tensor:
    """Union of [start, start + width) segments: starts/widths (B, N) -> bool (B, size)."""
    idx = torch.arange(size, device=starts.device)  # (size,)
    inside = (idx >= starts.unsqueeze(-1)) & (idx < (starts + widths).unsqueeze(-1))  # (B, N, size)
    return inside.any(dim=1)


def _keep_under_cap(widths: Tensor, drawn: Tensor, cap: Tensor) -> Tensor:
    """Which drawn segments to keep: the longest prefix whose summed widths stay <= cap.

    widths (B, N) >= 0, drawn (B, N) bool (a prefix), cap (B,) -> keep (B, N) bool.
    """
    running = torch.cumsum(widths * drawn, dim=1)
    fits = running.to(cap.dtype) <= cap.unsqueeze(1)
    # Widths are >= 0, so once a prefix overflows every longer one does: ``fits`` is a prefix.
    return drawn & fits


# --------------------------------------------------------------------------- transforms


def random_multi_crop(
    x: Tensor,
    lengths: Tensor | None,
    out_frames: int,
    *,
    ratio_range: tuple[float, float] = (0.1, 0.9),
    n_crops: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[list[Tensor], Params]:
    """Cut ``n_crops`` random crops per item and resize each to ``out_frames`` frames.

    For item b and crop i: r ~ U[ratio_range], length = max(1, round(len_b * r)),
    start ~ U{0..len_b - length}; the crop [start, start + length) is resampled to
    ``out_frames`` frames by linear interpolation with aligned corners.

    Args:
        x: (B, F, T) spectrograms.
        lengths: (B,) valid frames per item, or None (all T valid).
        out_frames: frames of every output crop.

    Returns:
        ``[crop_0, ..., crop_{n-1}]``, each (B, F, out_frames), and params:
        ``applied`` bool (B,) (always True), ``ratio`` float (B, n_crops),
        ``start`` long (B, n_crops), ``length`` long (B, n_crops) in frames.
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    _check_ratio_range("ratio_range", ratio_range)
    if out_frames < 1:
        raise ValueError(f"out_frames must be >= 1, got {out_frames}")
    if n_crops < 1:
        raise ValueError(f"n_crops must be >= 1, got {n_crops}")
    valid = _valid_lengths(x, lengths)  # (B,)
    batch = x.shape[0]
    lo, hi = ratio_range
    ratio = lo + (hi - lo) * _rand((batch, n_crops), x, generator)  # (B, n)
    length = torch.round(valid.unsqueeze(1).float() * ratio).long()
    length = torch.minimum(length.clamp(min=1), valid.unsqueeze(1))  # (B, n)
    start = _uniform_start(valid.unsqueeze(1) - length, _rand((batch, n_crops), x, generator))

    if out_frames == 1:
        steps = torch.full((1,), 0.5, device=x.device)  # the crop's centre
    else:
        steps = torch.arange(out_frames, device=x.device, dtype=torch.float32) / (out_frames - 1)
    # All crops in one gather: positions and read limits of crop i fill columns
    # [i * out_frames, (i + 1) * out_frames).
    first = start.unsqueeze(2)  # (B, n, 1)
    last = first + length.unsqueeze(2) - 1
    pos = torch.maximum(first.float() + steps * (last - first).float(), first.float())  # (B, n, out_frames)
    last = last.expand(-1, -1, steps.numel())
    joined = _resample_time(x, pos.reshape(batch, -1), last.reshape(batch, -1))  # (B, F, n * out_frames)
    crops = list(joined.split(out_frames, dim=2))
    applied = torch.ones(batch, dtype=torch.bool, device=x.device)
    return crops, {"applied": applied, "ratio": ratio, "start": start, "length": length}


def frequency_mask(
    x: Tensor,
    *,
    p: float = 0.5,
    n_range: tuple[int, int] = (1, 5),
    width_range: tuple[int, int] = (5, 30),
    max_total: int | None = None,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """Random frequency masking of x (B, F, T): :func:`draw_frequency_mask`, then the masked
    bins set to ``fill`` in a copy. Returns the (B, F, T) copy and the draw's params."""
    mask, params = draw_frequency_mask(
        x, p=p, n_range=n_range, width_range=width_range, max_total=max_total, generator=generator
    )
    return x.masked_fill(mask.unsqueeze(2), fill), params


def draw_frequency_mask(
    x: Tensor,
    *,
    p: float = 0.5,
    n_range: tuple[int, int] = (1, 5),
    width_range: tuple[int, int] = (5, 30),
    max_total: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """Random frequency masking: with probability p, choose N bands of bins to mask.

    N ~ U{n_range}, each width ~ U{width_range} bins, start uniform so the band fits in
    the F bins. Summed widths are capped at ``max_total`` bins (default floor(0.4 * F)) by
    dropping, in draw order, the first band that would overflow and all later ones.

    Args:
        x: (B, F, T) spectrograms; needs F >= width_range[1].

    Returns:
        the mask, bool (B, F) (True = masked bin), and params (N_max = n_range[1]):
        ``applied`` bool (B,); ``n_drawn`` long (B,) bands drawn; ``n`` long (B,) bands kept;
        ``widths`` long (B, N_max) and ``starts`` long (B, N_max) of kept bands (0 elsewhere);
        ``total`` long (B,) summed kept widths (<= max_total).
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    _check_prob("p", p)
    _check_int_range("n_range", n_range)
    _check_int_range("width_range", width_range)
    batch, bins, _ = x.shape
    if width_range[1] > bins:
        raise ValueError(f"width_range upper bound {width_range[1]} exceeds the {bins} frequency bins; lower it")
    cap = math.floor(0.4 * bins) if max_total is None else max_total
    if cap < width_range[0]:
        raise ValueError(
            f"max_total={cap} bins is below the smallest band width {width_range[0]}, so nothing could be masked; "
            "raise max_total or lower width_range"
        )
    n_max = n_range[1]
    applied = _rand((batch,), x, generator) < p
    n_drawn = _randint(n_range[0], n_range[1], (batch,), x, generator)
    widths = _randint(width_range[0], width_range[1], (batch, n_max), x, generator)
    starts = _uniform_start(bins - widths, _rand((batch, n_max), x, generator))

    drawn = (torch.arange(n_max, device=x.device) < n_drawn.unsqueeze(1)) & applied.unsqueeze(1)  # (B, N_max)
    keep = _keep_under_cap(widths, drawn, torch.full((batch,), cap, device=x.device))
    widths = widths * keep
    starts = starts * keep
    mask = _segment_mask(starts, widths, bins)  # (B, F)
    params = {
        "applied": applied,
        "n_drawn": n_drawn * applied,
        "n": keep.sum(dim=1),
        "widths": widths,
        "starts": starts,
        "total": widths.sum(dim=1),
    }
    return mask, params


def time_mask(
    x: Tensor,
    lengths: Tensor | None = None,
    *,
    p: float = 0.5,
    n_range: tuple[int, int] = (1, 10),
    ratio_range: tuple[float, float] = (0.01, 0.2),
    max_total_ratio: float = 0.4,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """Random time masking of x (B, F, T): :func:`draw_time_mask`, then the masked frames
    set to ``fill`` in a copy. Returns the (B, F, T) copy and the draw's params."""
    mask, params = draw_time_mask(
        x, lengths, p=p, n_range=n_range, ratio_range=ratio_range, max_total_ratio=max_total_ratio,
        generator=generator,
    )
    return x.masked_fill(mask.unsqueeze(1), fill), params


def draw_time_mask(
    x: Tensor,
    lengths: Tensor | None = None,
    *,
    p: float = 0.5,
    n_range: tuple[int, int] = (1, 10),
    ratio_range: tuple[float, float] = (0.01, 0.2),
    max_total_ratio: float = 0.4,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """Random time masking: with probability p, choose N spans of frames to mask.

    N ~ U{n_range}; each span has t = round(len * r) frames, r ~ U[ratio_range], start
    uniform so the span fits in the item's valid frames. Summed lengths are kept
    <= max_total_ratio * len by dropping, in draw order, the first span that would
    overflow and all later ones. Padding frames (>= len) are never touched.

    Args:
        x: (B, F, T) spectrograms.
        lengths: (B,) valid frames per item, or None (all T valid).

    Returns:
        the mask, bool (B, T) (True = masked frame), and params (N_max = n_range[1]):
        ``applied`` bool (B,); ``n_drawn`` long (B,); ``n`` long (B,) spans kept;
        ``ratios`` float (B, N_max), ``lengths`` long (B, N_max) in frames and
        ``starts`` long (B, N_max) of kept spans (0 elsewhere); ``total`` long (B,) summed
        kept lengths (<= max_total_ratio * len).
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    _check_prob("p", p)
    _check_int_range("n_range", n_range)
    _check_ratio_range("ratio_range", ratio_range)
    if not ratio_range[0] <= max_total_ratio <= 1.0:
        raise ValueError(
            f"max_total_ratio must be in [ratio_range[0]={ratio_range[0]}, 1] so a span can fit, got {max_total_ratio}"
        )
    valid = _valid_lengths(x, lengths)  # (B,)
    batch, _, frames = x.shape
    n_max = n_range[1]
    lo, hi = ratio_range
    applied = _rand((batch,), x, generator) < p
    n_drawn = _randint(n_range[0], n_range[1], (batch,), x, generator)
    ratios = lo + (hi - lo) * _rand((batch, n_max), x, generator)
    spans = torch.round(valid.unsqueeze(1).float() * ratios).long()  # (B, N_max), <= len since r <= 1
    starts = _uniform_start(valid.unsqueeze(1) - spans, _rand((batch, n_max), x, generator))

    drawn = (torch.arange(n_max, device=x.device) < n_drawn.unsqueeze(1)) & applied.unsqueeze(1)
    keep = _keep_under_cap(spans, drawn, max_total_ratio * valid.float())
    spans = spans * keep
    starts = starts * keep
    mask = _segment_mask(starts, spans, frames)  # (B, T)
    params = {
        "applied": applied,
        "n_drawn": n_drawn * applied,
        "n": keep.sum(dim=1),
        "ratios": ratios * keep,
        "lengths": spans,
        "starts": starts,
        "total": spans.sum(dim=1),
    }
    return mask, params


def time_warp(
    x: Tensor,
    *,
    p: float = 0.4,
    W: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """SpecAugment time warping of x (B, F, T): :func:`draw_time_warp`, then each output
    frame read at its source position (linear interpolation). Returns the (B, F, T) warped
    copy and the draw's params."""
    src, params = draw_time_warp(x, p=p, W=W, generator=generator)
    last = torch.full((x.shape[0], 1), x.shape[2] - 1, dtype=torch.long, device=x.device)
    return _resample_time(x, src, last), params


def draw_time_warp(
    x: Tensor,
    *,
    p: float = 0.4,
    W: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """SpecAugment time warping: with probability p, move frame c to c + d, both ends fixed.

    c ~ U[W, T-1-W), d = +-W * u with u ~ U[0, 1) and the sign a fair coin. Output frame
    y reads the input at s(y): s maps [0, c+d] linearly onto [0, c] and [c+d, T-1] onto
    [c, T-1] (linear interpolation between frames). Skipped for the whole batch when
    T - 1 <= 2W.

    Args:
        x: (B, F, T) spectrograms.

    Returns:
        the source positions s(y), float (B, T) (y itself for items not warped), and params:
        ``applied`` bool (B,), ``centre`` float (B,) (c, in frames), ``distance`` float (B,)
        (signed d; > 0 moves content later).
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    _check_prob("p", p)
    if W < 0 or int(W) != W:
        raise ValueError(f"W must be a non-negative integer number of frames, got {W}")
    batch, _, frames = x.shape
    applied = _rand((batch,), x, generator) < p
    u_centre = _rand((batch,), x, generator)
    u_distance = _rand((batch,), x, generator)
    sign = torch.where(_rand((batch,), x, generator) < 0.5, -1.0, 1.0)
    y = torch.arange(frames, device=x.device, dtype=torch.float32)  # (T,)
    if frames - 1 <= 2 * W:
        zeros = torch.zeros(batch, device=x.device)
        identity = y.expand(batch, frames).clone()
        return identity, {"applied": torch.zeros_like(applied), "centre": zeros, "distance": zeros.clone()}

    end = float(frames - 1)
    centre = W + u_centre * (end - 2 * W)  # (B,) in [W, T-1-W)
    distance = sign * W * u_distance  # (B,) in (-W, W)
    c = centre.unsqueeze(1)
    a = (centre + distance).unsqueeze(1)  # where c lands, strictly inside (0, T-1)
    left = y * (c / a)  # (B, T)
    right = end - (end - y) * ((end - c) / (end - a))
    src = torch.where(y <= a, left, right)
    src = torch.where(applied.unsqueeze(1), src, y)  # items not warped read their own frames
    return src, {"applied": applied, "centre": centre * applied, "distance": distance * applied}


def _shift_along(x: Tensor, shift: Tensor, dim: int, fill: float) -> Tensor:
    """Shift each item of x (B, F, T) by shift[b] cells along dim (1 or 2), vacated cells = fill."""
    size = x.shape[dim]
    src = torch.arange(size, device=x.device) - shift.unsqueeze(1)  # (B, size)
    inside = (src >= 0) & (src < size)
    src = src.clamp(0, size - 1)
    if dim == 1:
        index, outside = src.unsqueeze(2).expand_as(x), ~inside.unsqueeze(2)
    else:
        index, outside = src.unsqueeze(1).expand_as(x), ~inside.unsqueeze(1)
    return torch.gather(x, dim, index).masked_fill_(outside, fill)  # the gather's output is ours


def random_shift(
    x: Tensor,
    *,
    p: float = 0.4,
    steps_range: tuple[int, int] = (1, 10),
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Params]:
    """Random pitch or time shift of x (B, F, T): :func:`draw_random_shift`, then the shift.
    Returns the (B, F, T) shifted copy and the draw's params."""
    params = draw_random_shift(x, p=p, steps_range=steps_range, generator=generator)
    steps, axis = params["steps"], params["axis"]
    out = _shift_along(x, torch.where(axis == 0, steps, 0), 1, fill)
    out = _shift_along(out, torch.where(axis == 1, steps, 0), 2, fill)
    return out, params


def draw_random_shift(
    x: Tensor,
    *,
    p: float = 0.4,
    steps_range: tuple[int, int] = (1, 10),
    generator: torch.Generator | None = None,
) -> Params:
    """Random pitch or time shift: with probability p, shift by s ~ +-U{steps_range} cells.

    The axis (frequency = pitch, or time) and the direction are fair coins. Not circular:
    cells shifted in from outside get the fill value, so a pitch shift never wraps the bass
    into the treble.

    Args:
        x: (B, F, T) spectrograms.

    Returns:
        params: ``applied`` bool (B,), ``axis`` long (B,) (0 frequency, 1 time, -1 not
        applied), ``steps`` long (B,) (signed; > 0 moves content to higher bins / later
        frames, 0 when not applied).
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    _check_prob("p", p)
    _check_int_range("steps_range", steps_range)
    batch = x.shape[0]
    applied = _rand((batch,), x, generator) < p
    axis = (_rand((batch,), x, generator) < 0.5).long()
    magnitude = _randint(steps_range[0], steps_range[1], (batch,), x, generator)
    sign = torch.where(_rand((batch,), x, generator) < 0.5, -1, 1)
    steps = sign * magnitude * applied
    return {"applied": applied, "axis": torch.where(applied, axis, -1), "steps": steps}


def log_mix(x: Tensor, partner: Tensor, ratio: Tensor) -> Tensor:
    """``log((1 - r) * exp(x) + r * exp(x[partner]))`` per item: x (B, F, T), partner long (B,)
    (an index into the batch), ratio (B,) in [0, 1) -> (B, F, T). A ratio of 0 returns x."""
    r = ratio.to(x.dtype).view(-1, 1, 1)
    # logaddexp keeps exp() from overflowing; log1p(-r) is -inf only for r = 1, which is refused.
    return torch.logaddexp(x + torch.log1p(-r), x[partner] + torch.log(r))


def draw_mix(x: Tensor, *, p: float = 0.5, max_ratio: float = 0.4, generator: torch.Generator | None = None) -> Params:
    """Mixing with another clip of the batch: with probability p, a partner j != i and a ratio
    r ~ U[0, max_ratio) for :func:`log_mix` (BYOL-A's log-mixup-exp, not one of the paper's four).

    Args:
        x: (B, F, T) spectrograms; with B = 1 there is no partner and nothing is applied.

    Returns:
        params: ``applied`` bool (B,), ``partner`` long (B,) (the item's own index where not
        applied), ``ratio`` float (B,) (0 where not applied).
    """
    _check_batch(x)
    _check_generator(generator, x.device)
    _check_prob("p", p)
    if not 0.0 < max_ratio < 1.0:
        raise ValueError(f"max_ratio must be in (0, 1), got {max_ratio}")
    batch = x.shape[0]
    own = torch.arange(batch, device=x.device)
    applied = (_rand((batch,), x, generator) < p) & (batch > 1)
    # An offset in 1..B-1 never lands on the item itself, and every other item is equally likely.
    offset = _randint(1, max(batch - 1, 1), (batch,), x, generator)
    ratio = _rand((batch,), x, generator) * max_ratio * applied
    return {"applied": applied, "partner": torch.where(applied, (own + offset) % batch, own), "ratio": ratio}


def _warp_and_shift(x: Tensor, src: Tensor, shift: Params, fill: float, *, may_shift: bool = True) -> Tensor:
    """:func:`time_warp` at source positions ``src`` (B, T) followed by the shift ``shift``
    (params of :func:`draw_random_shift`), in one resampling and one gather.

    ``may_shift=False`` says no item can be shifted (the shift's p is 0, a setting known before
    any draw): the warp is then the only work, with no gather or fill that would change nothing.

    A time shift by s reads the warped frame t - s, i.e. the source position ``src[t - s]``,
    so it only moves the positions; a pitch shift is one gather along the bins of the
    resampled frames; the cells shifted in from outside get ``fill`` in one pass. Equal to
    ``random_shift(time_warp(x))`` with the same draws.
    """
    batch, bins, frames = x.shape
    last = torch.full((batch, 1), frames - 1, dtype=torch.long, device=x.device)
    if not may_shift:
        return _resample_time(x, src, last)
    steps = shift["steps"]
    t_steps = torch.where(shift["axis"] == 1, steps, 0).unsqueeze(1)  # (B, 1)
    f_steps = torch.where(shift["axis"] == 0, steps, 0).unsqueeze(1)
    t_from = torch.arange(frames, device=x.device) - t_steps  # (B, T) warped frame each output frame shows
    f_from = torch.arange(bins, device=x.device) - f_steps  # (B, F)
    t_inside = (t_from >= 0) & (t_from < frames)
    f_inside = (f_from >= 0) & (f_from < bins)
    pos = torch.gather(src, 1, t_from.clamp(0, frames - 1))  # (B, T)
    rows = _resample_time(x, pos, last).transpose(1, 2)  # (B, T, F), contiguous
    index = f_from.clamp(0, bins - 1).unsqueeze(1).expand(batch, frames, bins)
    rows = torch.gather(rows, 2, index)  # the pitch shift, within each frame
    outside = ~(t_inside.unsqueeze(2) & f_inside.unsqueeze(1))  # (B, T, F)
    return rows.masked_fill_(outside, fill).transpose(1, 2)


# --------------------------------------------------------------------------- module


class MusicAugment(nn.Module):
    """The paper's augmentation pipeline: two crops, then four random transforms per crop.

    ``forward(x, lengths=None, generator=None) -> (x_q, x_k, params)``: x (B, F, T) ->
    x_q, x_k (B, F, out_frames). Crop 0 becomes the query view, crop 1 the key view; each
    view then goes through ``PIPELINE_ORDER`` (freq_mask, time_mask, time_warp, shift)
    with independent draws (all of the query's draws come before the key's).

    ``params`` is flat: ``crop.{applied,ratio,start,length}`` (ratio/start/length are
    (B, 2), column 0 = query) and, for view in (q, k):
    ``{view}.freq_mask.{applied,n_drawn,n,widths,starts,total}``,
    ``{view}.time_mask.{applied,n_drawn,n,ratios,lengths,starts,total}``,
    ``{view}.time_warp.{applied,centre,distance}``,
    ``{view}.shift.{applied,axis,steps}`` (see each function for shapes), and with ``mix_p > 0``
    ``{view}.mix.{applied,partner,ratio}``.

    ``mix_p > 0`` adds a fifth transform before the four, not in the paper: each view is mixed
    with the same view of another clip of the batch, ``log((1 - r) e^x + r e^x')`` with
    ``r ~ U[0, mix_max_ratio)`` (:func:`log_mix`; BYOL-A's log-mixup-exp, Niizumi et al. 2021,
    which mixes in a clip from a memory of past batches). Two views of one clip then share their
    clip but not the other music laid over it. Off by default (the paper's pipeline).
    """

    def __init__(
        self,
        out_frames: int,
        *,
        crop_ratio_range: tuple[float, float] = (0.1, 0.9),
        freq_mask_p: float = 0.5,
        freq_mask_n_range: tuple[int, int] = (1, 5),
        freq_mask_width_range: tuple[int, int] = (5, 30),
        freq_mask_max_total: int | None = None,
        time_mask_p: float = 0.5,
        time_mask_n_range: tuple[int, int] = (1, 10),
        time_mask_ratio_range: tuple[float, float] = (0.01, 0.2),
        time_mask_max_total_ratio: float = 0.4,
        time_warp_p: float = 0.4,
        time_warp_W: int = 10,
        shift_p: float = 0.4,
        shift_steps_range: tuple[int, int] = (1, 10),
        mix_p: float = 0.0,
        mix_max_ratio: float = 0.4,
        fill: float = 0.0,
    ) -> None:
        super().__init__()
        if out_frames < 1:
            raise ValueError(f"out_frames must be >= 1, got {out_frames}")
        _check_ratio_range("crop_ratio_range", crop_ratio_range)
        for name, p in (
            ("freq_mask_p", freq_mask_p),
            ("time_mask_p", time_mask_p),
            ("time_warp_p", time_warp_p),
            ("shift_p", shift_p),
            ("mix_p", mix_p),
        ):
            _check_prob(name, p)
        if not 0.0 < mix_max_ratio < 1.0:
            raise ValueError(f"mix_max_ratio must be in (0, 1), got {mix_max_ratio}")
        _check_int_range("freq_mask_n_range", freq_mask_n_range)
        _check_int_range("freq_mask_width_range", freq_mask_width_range)
        if freq_mask_max_total is not None and freq_mask_max_total < freq_mask_width_range[0]:
            raise ValueError(
                f"freq_mask_max_total={freq_mask_max_total} is below the smallest band width "
                f"{freq_mask_width_range[0]}; raise it or leave it None (40% of the bins)"
            )
        _check_int_range("time_mask_n_range", time_mask_n_range)
        _check_ratio_range("time_mask_ratio_range", time_mask_ratio_range)
        if not time_mask_ratio_range[0] <= time_mask_max_total_ratio <= 1.0:
            raise ValueError(
                f"time_mask_max_total_ratio must be in [{time_mask_ratio_range[0]}, 1], got {time_mask_max_total_ratio}"
            )
        if time_warp_W < 0 or int(time_warp_W) != time_warp_W:
            raise ValueError(f"time_warp_W must be a non-negative integer, got {time_warp_W}")
        _check_int_range("shift_steps_range", shift_steps_range)
        self.out_frames = out_frames
        self.crop_ratio_range = crop_ratio_range
        self.freq_mask_p = freq_mask_p
        self.freq_mask_n_range = freq_mask_n_range
        self.freq_mask_width_range = freq_mask_width_range
        self.freq_mask_max_total = freq_mask_max_total
        self.time_mask_p = time_mask_p
        self.time_mask_n_range = time_mask_n_range
        self.time_mask_ratio_range = time_mask_ratio_range
        self.time_mask_max_total_ratio = time_mask_max_total_ratio
        self.time_warp_p = time_warp_p
        self.time_warp_W = time_warp_W
        self.shift_p = shift_p
        self.shift_steps_range = shift_steps_range
        self.mix_p = mix_p
        self.mix_max_ratio = mix_max_ratio
        self.fill = fill

    def _augment_view(self, view: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Params]:
        """[mix ->] freq_mask -> time_mask -> time_warp -> shift on one (B, F, out_frames) view."""
        params: Params = {}
        if self.mix_p > 0:  # no draws at all when off, so the other transforms draw as they always did
            drawn = draw_mix(view, p=self.mix_p, max_ratio=self.mix_max_ratio, generator=generator)
            params.update({f"mix.{k}": v for k, v in drawn.items()})
            view = log_mix(view, drawn["partner"], drawn["ratio"])
        freq, drawn = draw_frequency_mask(
            view,
            p=self.freq_mask_p,
            n_range=self.freq_mask_n_range,
            width_range=self.freq_mask_width_range,
            max_total=self.freq_mask_max_total,
            generator=generator,
        )
        params.update({f"freq_mask.{k}": v for k, v in drawn.items()})
        frames, drawn = draw_time_mask(
            view,
            p=self.time_mask_p,
            n_range=self.time_mask_n_range,
            ratio_range=self.time_mask_ratio_range,
            max_total_ratio=self.time_mask_max_total_ratio,
            generator=generator,
        )
        params.update({f"time_mask.{k}": v for k, v in drawn.items()})
        # Both masks in one pass, in place: the view is this module's own crop.
        view.masked_fill_(freq.unsqueeze(2) | frames.unsqueeze(1), self.fill)
        src, drawn = draw_time_warp(view, p=self.time_warp_p, W=self.time_warp_W, generator=generator)
        params.update({f"time_warp.{k}": v for k, v in drawn.items()})
        drawn = draw_random_shift(view, p=self.shift_p, steps_range=self.shift_steps_range, generator=generator)
        params.update({f"shift.{k}": v for k, v in drawn.items()})
        view = _warp_and_shift(view, src, drawn, self.fill, may_shift=self.shift_p > 0)
        return view, params

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        moments: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Params]:
        """x: (B, F, T) standardised, or raw with ``moments`` = per-clip (mean, std), each
        (B, 1, 1) (:func:`s3t.model.clip_moments`); lengths: (B,) -> x_q, x_k: (B, F, out_frames).

        With ``moments`` the crops are standardised after they are cut. That equals cropping
        the standardised clip (a crop frame is a convex combination of two clip frames, and
        standardising is affine) but never writes the whole standardised clip, which is
        ``T / (2 * out_frames)`` times larger than the two crops (2.5x for a 30 s clip).
        """
        crops, crop_params = random_multi_crop(
            x, lengths, self.out_frames, ratio_range=self.crop_ratio_range, n_crops=2, generator=generator
        )
        if moments is not None:
            mean, std = moments
            crops = [torch.addcmul(-mean / std, crop, 1.0 / std) for crop in crops]  # (crop - mean) / std
        params: Params = {f"crop.{k}": v for k, v in crop_params.items()}
        views = []
        for name, crop in zip(("q", "k"), crops):
            view, drawn = self._augment_view(crop, generator)
            params.update({f"{name}.{k}": v for k, v in drawn.items()})
            views.append(view)
        return views[0], views[1], params

    def extra_repr(self) -> str:
        return (
            f"out_frames={self.out_frames}, crop_ratio_range={self.crop_ratio_range}, "
            f"p=(freq_mask {self.freq_mask_p}, time_mask {self.time_mask_p}, "
            f"time_warp {self.time_warp_p}, shift {self.shift_p}, mix {self.mix_p}), fill={self.fill}"
        )
