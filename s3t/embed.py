"""Clip embeddings from the frozen encoder (paper 3.2, linear evaluation input).

The paper trains linear classifiers on "representations" of whole clips without saying
how a clip longer than one model input becomes one vector, nor which layer gives the
representation. Our choices, both stored in the checkpoint's :class:`s3t.model.ModelConfig`
so that every tool embeds alike (arguments here override them):

* Segments. Pre-training views are crops of 10-90 % of a clip, stretched or squeezed to the
  model's frame count, so a clip is cut into ``num_segments`` equal consecutive segments,
  each resized along time to the encoder's frame count with linear interpolation, encoded,
  and the segment vectors are averaged. With 1 segment a 30 s clip is seen like a 100 % crop;
  more segments see it at the time scale of the typical crop.
* Pooling. ``final``: the backbone's own pooled output (Swin: the last stage, normed,
  averaged). ``stages``: for every stage, the mean and standard deviation of its feature map
  over all positions, concatenated: earlier stages keep finer time-frequency detail, and the
  standard deviation keeps how much it varies, which a mean loses.

A file embedding (:func:`embed_files`): a file no longer than :data:`SQUEEZE_LIMIT` times the
clip length the encoder was pre-trained on (30 s in the pipeline; stored in the checkpoint) is
one clip. A longer one is cut into the fewest windows of that length that cover it, evenly
spaced from its start to its end (overlapping where the length is not a multiple), and its
embedding is the mean of theirs. Without this a 4-minute song would be squeezed 8x in time
into one model input, a time scale pre-training never showed the encoder. The mean (not,
say, a max or a concatenation) keeps one vector of the probe's size for any length and
weighs every part of the song alike.

Windows (:func:`window_bounds`, :func:`embed_windows`): asked for explicitly, the CLI cuts a
file into windows of ``window_s`` seconds every ``hop_s`` seconds and embeds each window as
a clip of its own, one row each. Windows are whole, never
cut short: when more than half a hop of audio is left after the last window, one more
window ends at the file's end (overlapping its neighbour more than the hop says); a file
shorter than one window is one row.
Times are in seconds of audio, to within one CQT frame (hop_length / sample_rate, 23 ms
at the paper's settings), since they are counted in frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from s3t.checkpoint import KIND_EMBEDDINGS, CheckpointError, load_checkpoint
from s3t.model import Encoder, standardize


def clip_views(spec: torch.Tensor, frames: int, num_segments: int = 1) -> torch.Tensor:
    """Split one clip (F, T) into ``num_segments`` segments resized to ``frames``: (S, F, frames)."""
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    T = spec.shape[-1]
    bounds = torch.linspace(0, T, num_segments + 1).round().long().tolist()
    views = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        segment = spec[:, a : max(b, a + 1)]
        views.append(F.interpolate(segment[None], size=frames, mode="linear", align_corners=False)[0])
    return torch.stack(views)


@torch.no_grad()
def embed_spectrograms(
    encoder: Encoder,
    clips: Sequence[torch.Tensor],
    *,
    batch_size: int = 32,
    num_segments: int | None = None,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Embed clips of log-CQT (F, T_i) with the frozen encoder: (N, encoder.embedding_dim) float32 on CPU.

    ``num_segments`` defaults to the encoder config's ``embed_segments``. ``on_batch(n)`` is
    called after each batch with the number of clips done (for progress bars).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    num_segments = encoder.config.embed_segments if num_segments is None else num_segments
    encoder = encoder.to(device).eval()
    out = []
    for start in range(0, len(clips), batch_size):
        chunk = clips[start : start + batch_size]
        views = torch.cat([clip_views(standardize(c[None].float())[0], encoder.frames, num_segments) for c in chunk])
        emb = encoder.embed(views.to(device)).float().view(len(chunk), num_segments, -1).mean(1)
        out.append(emb.cpu())
        if on_batch is not None:
            on_batch(start + len(chunk))
    return torch.cat(out) if out else torch.zeros(0, encoder.embedding_dim)


def window_bounds(num_frames: int, frames_per_second: float, window_s: float | None, hop_s: float | None) -> list[tuple[int, int]]:
    """Frame ranges [a, b) of the windows of a clip of ``num_frames`` frames (see module docstring).

    ``window_s`` None gives the whole clip; ``hop_s`` None means ``window_s`` (windows side
    by side). Both in seconds; ``frames_per_second`` is the CQT's, after time compression.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if window_s is None:
        if hop_s is not None:
            raise ValueError("a hop needs a window: give the window length too")
        return [(0, num_frames)]
    hop_s = window_s if hop_s is None else hop_s
    if not (window_s > 0 and hop_s > 0):
        raise ValueError(f"window and hop must be > 0 seconds, got {window_s} and {hop_s}")
    window = round(window_s * frames_per_second)
    if window < 1 or round(hop_s * frames_per_second) < 1:
        raise ValueError(
            f"window {window_s} s and hop {hop_s} s must each span at least one CQT frame ({1 / frames_per_second:.4f} s)"
        )
    if num_frames <= window:
        return [(0, num_frames)]
    # Starts are rounded from k * hop_s, not accumulated in whole frames, so they do not drift.
    starts = [round(k * hop_s * frames_per_second) for k in range(int(num_frames / (hop_s * frames_per_second)) + 1)]
    bounds = [(a, a + window) for a in starts if a + window <= num_frames]
    tail = num_frames - window
    if tail - bounds[-1][0] > hop_s * frames_per_second / 2:
        bounds.append((tail, num_frames))
    return bounds


SQUEEZE_LIMIT = 1.25
"""Longest file, in training clips, embedded as one clip: pre-training views already stretch and squeeze crops of
10-90 % of a clip, so a quarter more is within what the encoder saw."""


def file_windows(num_frames: int, clip_frames: int) -> list[tuple[int, int]]:
    """Frame ranges [a, b) of a file embedding's windows (module docstring): the whole file when it is at most
    :data:`SQUEEZE_LIMIT` clips long, else ``ceil(num_frames / clip_frames)`` windows of ``clip_frames``, the
    first at the start, the last at the end, the others evenly between."""
    if num_frames < 1 or clip_frames < 1:
        raise ValueError(f"num_frames and clip_frames must be >= 1, got {num_frames} and {clip_frames}")
    if num_frames <= SQUEEZE_LIMIT * clip_frames:
        return [(0, num_frames)]
    n = -(-num_frames // clip_frames)
    starts = torch.linspace(0, num_frames - clip_frames, n).round().long().tolist()
    return [(a, a + clip_frames) for a in starts]


@torch.no_grad()
def embed_files(
    encoder: Encoder,
    clips: Sequence[torch.Tensor],
    clip_seconds: float | None,
    *,
    batch_size: int = 32,
    num_segments: int | None = None,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """One embedding per file of log-CQT (F, T_i): (N, D) float32 on CPU, the mean over :func:`file_windows` of
    ``clip_seconds`` (the encoder's training clip length; None: every file whole, as :func:`embed_spectrograms`).
    ``on_batch(n)`` is called with the number of windows done."""
    if clip_seconds is None:
        return embed_spectrograms(encoder, clips, batch_size=batch_size, num_segments=num_segments, device=device,
                                  on_batch=on_batch)
    clip_frames = max(1, round(clip_seconds * encoder.config.cqt.frames_per_second))
    pieces, owner = [], []
    for i, spec in enumerate(clips):
        for a, b in file_windows(spec.shape[-1], clip_frames):
            pieces.append(spec[:, a:b])
            owner.append(i)
    emb = embed_spectrograms(encoder, pieces, batch_size=batch_size, num_segments=num_segments, device=device,
                             on_batch=on_batch)
    index = torch.tensor(owner, dtype=torch.long)
    sums = torch.zeros(len(clips), emb.shape[1]).index_add_(0, index, emb)
    return sums / torch.bincount(index, minlength=len(clips)).clamp_min(1)[:, None]


@dataclass(frozen=True)
class WindowEmbeddings:
    """Embeddings of windows of several clips.

    embeddings: (M, D) float32; clip: (M,) index of the clip each row belongs to; start_s,
    end_s: (M,) float64 seconds from the clip's start.
    """

    embeddings: torch.Tensor
    clip: list[int]
    start_s: list[float]
    end_s: list[float]


def embed_windows(
    encoder: Encoder,
    clips: Sequence[torch.Tensor],
    *,
    window_s: float | None = None,
    hop_s: float | None = None,
    batch_size: int = 32,
    num_segments: int | None = None,
    device: torch.device | str = "cpu",
) -> WindowEmbeddings:
    """Embed every window (:func:`window_bounds`) of every clip of log-CQT (F, T_i) as a clip of its own.

    Without ``window_s`` each clip is one row, exactly :func:`embed_spectrograms`.
    """
    fps = encoder.config.cqt.frames_per_second
    pieces, owner, starts, ends = [], [], [], []
    for i, spec in enumerate(clips):
        for a, b in window_bounds(spec.shape[-1], fps, window_s, hop_s):
            pieces.append(spec[:, a:b])
            owner.append(i)
            starts.append(a / fps)
            ends.append(b / fps)
    emb = embed_spectrograms(encoder, pieces, batch_size=batch_size, num_segments=num_segments, device=device)
    return WindowEmbeddings(emb, owner, starts, ends)


@dataclass
class EmbeddingSet:
    """Embeddings of labeled clips with what a probe needs; stored with :func:`s3t.checkpoint.save_checkpoint`.

    embeddings: (N, D) float32. ``method`` names the encoder: "s3t", "random_init" or "supervised".
    """

    embeddings: torch.Tensor
    ids: list[str]
    labels: list[tuple[str, ...]]
    splits: list[str]
    label_set: list[str]
    multilabel: bool
    method: str

    def __post_init__(self) -> None:
        n = self.embeddings.shape[0]
        if not len(self.ids) == len(self.labels) == len(self.splits) == n:
            raise ValueError(f"{n} embeddings but {len(self.ids)} ids, {len(self.labels)} labels, {len(self.splits)} splits")

    def to_state(self) -> dict:
        state = asdict(self)
        state["labels"] = [list(labels) for labels in self.labels]
        return state

    @classmethod
    def from_state(cls, state: dict) -> "EmbeddingSet":
        return cls(**{**state, "labels": [tuple(labels) for labels in state["labels"]]})


def load_embeddings(path) -> tuple[EmbeddingSet, list[list[str]]]:
    """The embeddings of a ``s3t-embeddings`` checkpoint and its rejected files ([path, reason] pairs).

    Raises:
        CheckpointError: not an embeddings checkpoint, or a damaged one.
    """
    state = load_checkpoint(path, kind=KIND_EMBEDDINGS)
    try:
        embeddings = EmbeddingSet.from_state(state["embeddings"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is a damaged embeddings checkpoint ({type(err).__name__}: {err})") from None
    return embeddings, list(state.get("rejected", []))


def embed_labeled(
    encoder: Encoder,
    clips: Sequence[torch.Tensor],
    *,
    ids: Sequence[str],
    labels: Sequence[tuple[str, ...]],
    splits: Sequence[str],
    method: str,
    batch_size: int = 32,
    num_segments: int | None = None,
    device: torch.device | str = "cpu",
) -> EmbeddingSet:
    """Embed labeled clips into an :class:`EmbeddingSet`; multi-label when any clip has other than one label."""
    emb = embed_spectrograms(encoder, clips, batch_size=batch_size, num_segments=num_segments, device=device)
    return EmbeddingSet(
        embeddings=emb, ids=list(ids), labels=[tuple(x) for x in labels], splits=list(splits),
        label_set=sorted({label for row in labels for label in row}),
        multilabel=any(len(row) != 1 for row in labels), method=method,
    )
