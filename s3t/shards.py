"""Featurizing a whole corpus into memory-mappable shards (paper 3.2 "Model Input").

The paper pre-trains on compressed log-CQT spectrograms of its music; at the scale we plan
for (1 M songs of 3-5 minutes) the features must be computed once, streamed to disk, and read
back without loading them. :func:`featurize_to_shards` decodes (worker processes), resamples
to the CQT's rate, runs the CQT batched on the module's device, and appends each clip's
compressed log-CQT to a shard; :class:`FeatureStore` reads the result as a
``Sequence[Tensor (F, T_i)]`` for :func:`s3t.train.pretrain` and :mod:`s3t.embed`.

Layout of ``out_dir``::

    plan.json                       the settings, the CQT implementation and a digest of the input list
    shards/shard-00000.npy          float16 array (frames, n_bins): the shard's clips one
                                    after the other along axis 0
    shards/shard-00000.rejects.csv  files of this shard that were rejected, with the reason
    shards/shard-00000.index.csv    one row per stored clip (written last: see below)
    ...
    index.csv                       every shard's index part, in shard order
    rejects.csv                     every shard's rejects part, in shard order
    summary.json                    counts for the whole corpus (no timings: the same inputs and
                                    settings give the same bytes on any machine, in any folder)

Why this layout:

* Few large files instead of one per clip: a million small files strain file systems,
  object stores and ``rsync``/DVC alike; at the paper's 100x time compression a 4-minute
  song is ~100 frames x 84 bins x 2 bytes = 17 KB, and a shard of 256 of them is ~4 MB.
* ``.npy`` so that ``np.load(mmap_mode="r")`` maps a shard without reading it.
* Time on axis 0, ``(frames, n_bins)``, rather than ``(n_bins, frames)``: a clip is then one
  contiguous byte range (one seek and one read per clip instead of one per bin), and a shard
  is written clip by clip without first concatenating it in memory. :class:`FeatureStore`
  transposes back to the ``(n_bins, T_i)`` the rest of the library uses.
* float16: halves the size; its relative rounding error of 2**-11 (~5e-4) is far below the
  spread of log-CQT values (the log floor is ln(1e-6) = -13.8).

Streaming and resuming. The input list is sorted by ``clip_id`` and cut into consecutive
chunks of ``clips_per_shard``; shard ``k`` holds the clips (stored or rejected) of chunk
``k``, so membership depends only on the input list. A shard is written data file first,
rejects part second, index part last, each to a ``*.tmp`` file then ``os.replace``d, so it is
complete exactly when its index part exists (and its data file, checked too). A rerun skips
complete shards and redoes the rest; ``plan.json`` refuses a rerun whose settings or input
list differ, which would otherwise mix shards of two plans. Memory holds at most one shard's
features, one batch of waveforms, and ``max_in_flight`` decoded waveforms (see
:func:`s3t.features.decode_files`), however large the corpus; the input list itself
and :class:`FeatureStore`'s columnar index (a few hundred bytes per clip each, mostly the
id and path strings) are the only parts that grow with it.

One run, four steps, shared by the single-process path (:func:`featurize_to_shards`) and the
Dask path (``flows/featurize.py``), so both write the same bytes: :func:`plan_shards` cuts
the sorted input list into :class:`ShardJob` s; :func:`prepare_shards` checks or writes
``plan.json``, clears stale temporary files and returns the unfinished jobs;
:func:`featurize_shard` makes one shard (any process, any order: a shard depends only on
its own clips, and a CQT batch never spans two shards); :func:`merge_shards` joins the
parts in shard order and writes the summary. Temporary names are unique per write, so
even two processes writing the same shard (a re-run task) each rename a whole file.

Bad files (missing, unreadable, zero bytes, not audio, truncated, silent, non-finite
samples, shorter than ``min_seconds``, a crashing decoder) are listed in ``rejects.csv`` with
the reason; the run goes on. Every input is either a row of ``index.csv`` or of
``rejects.csv``, and the merge checks it.
"""

from __future__ import annotations

import array
import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import operator
import os
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

import numpy as np
import torch

from s3t.audio import find_audio_files
from s3t.cqt import CQT, CQTConfig, compress_time
from s3t.cqt import IMPLEMENTATION as CQT_IMPLEMENTATION
from s3t.features import Decoded, cqt_batch, decode_files
from s3t.manifest import LABEL_SEPARATOR, ManifestRow

__all__ = [
    "INDEX_COLUMNS",
    "REJECT_COLUMNS",
    "ClipSource",
    "FeatureStore",
    "Recompressed",
    "audio_hours",
    "clip_paths",
    "IncompleteShardsError",
    "ShardJob",
    "ShardPlanError",
    "ShardProgress",
    "ShardResult",
    "featurize_shard",
    "featurize_to_shards",
    "merge_shards",
    "plan_shards",
    "pretraining_clips",
    "prepare_shards",
    "sources_from_folder",
    "sources_from_manifest",
]

INDEX_COLUMNS = (
    "clip_id", "dataset", "split", "label", "path", "duration_s", "frames", "shard", "offset",
    "mean", "std", "min", "max",
)
"""Columns of ``index.csv``: ``label`` is the clip's labels joined with ``|``; ``duration_s`` the
decoded length in seconds at the CQT's rate; ``shard`` the data file relative to ``out_dir``;
``offset`` and ``frames`` the clip's rows ``[offset, offset + frames)`` in it; ``mean``/``std``
(population)/``min``/``max`` summarise the clip's stored float16 log-CQT values."""

REJECT_COLUMNS = ("clip_id", "dataset", "split", "path", "reason")
"""Columns of ``rejects.csv``."""

UNLABELED = "unlabeled"
"""The split name that, in a pre-training selection, adds a dataset's pre-training-only store:
the sub-store ``<out_dir>/unlabeled`` (the soundtracks' pieces of tracks outside the test split)."""

_PLAN_FORMAT = 1
_FLOAT_COLUMNS = ("duration_s", "mean", "std", "min", "max")
_INT_COLUMNS = ("frames", "offset")


class ShardPlanError(ValueError):
    """``out_dir`` holds shards made with other settings or from another input list."""


class IncompleteShardsError(RuntimeError):
    """A merge was asked for while some shards of the plan are not written yet."""


@dataclass(frozen=True, slots=True)
class ClipSource:
    """One input clip: ``clip_id`` (unique in a run) names it in the outputs.

    ``path`` is what ``index.csv`` and ``rejects.csv`` store and the plan's digest covers; with
    ``root`` set, it is relative to ``root`` and the file opened is :attr:`file`. The pipeline
    stores paths relative to the repository, so a store's bytes (and the plan that lets a run
    resume) do not depend on where the checkout is.
    """

    clip_id: str
    path: str
    dataset: str = ""
    split: str = ""
    labels: tuple[str, ...] = ()
    root: str = ""

    @property
    def file(self) -> str:
        """The audio file to open: ``path``, under ``root`` when that is set."""
        return os.path.join(self.root, self.path) if self.root else self.path

    def __post_init__(self) -> None:
        if not self.clip_id or not self.path:
            raise ValueError(f"a clip needs a non-empty clip_id and path, got {self.clip_id!r}, {self.path!r}")
        if not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", tuple(self.labels))
        for label in self.labels:
            if not label or LABEL_SEPARATOR in label:
                raise ValueError(f"label {label!r} of {self.clip_id} is empty or contains {LABEL_SEPARATOR!r}")


@dataclass(frozen=True)
class ShardProgress:
    """Passed to ``on_progress`` after each shard is written."""

    shard: int  # the shard just written
    shards_done: int  # complete shards, including those found from an earlier run
    shards_total: int
    clips: int  # clips stored in this shard
    rejected: int  # files of this shard that were rejected


def _unique_ids(paths: Sequence[str]) -> list[str]:
    """File stems as ids; stems shared by several paths get ``~1``, ``~2``, ... in path order."""
    stems = [Path(p).stem for p in paths]
    counts = Counter(stems)
    taken = set(stems)
    ids = list(stems)
    suffix: Counter[str] = Counter()
    for i in sorted(range(len(paths)), key=lambda i: paths[i]):
        stem = stems[i]
        if counts[stem] == 1:
            continue
        while True:
            suffix[stem] += 1
            candidate = f"{stem}~{suffix[stem]}"
            if candidate not in taken:
                break
        taken.add(candidate)
        ids[i] = candidate
    return ids


def sources_from_manifest(rows: Iterable[ManifestRow], dataset: str) -> list[ClipSource]:
    """Labeled clips of a manifest (see :mod:`s3t.manifest`); ids are file stems made unique."""
    rows = list(rows)
    ids = _unique_ids([r.path for r in rows])
    return [ClipSource(i, r.path, dataset, r.split, r.labels) for i, r in zip(ids, rows)]


def sources_from_folder(root: str | os.PathLike, dataset: str) -> list[ClipSource]:
    """Unlabeled pre-training clips: every audio file under ``root`` (split ``""``, no labels)."""
    paths = [str(p) for p in find_audio_files(root)]
    return [ClipSource(i, p, dataset) for i, p in zip(_unique_ids(paths), paths)]


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}"


@contextlib.contextmanager
def _atomic(path: Path, mode: str) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success fsync it and rename it over
    ``path``, on failure remove it.

    The temporary name is unique per call (``<name>.<random>.tmp``): should two processes
    write the same shard at once (a Dask task re-run while its first attempt still runs),
    each writes its own file and the renames replace whole files, never interleave bytes.
    """
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, mode, **({"newline": "", "encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sources_digest(sources: Iterable[ClipSource]) -> str:
    h = hashlib.sha256()
    for s in sources:
        fields = (s.clip_id, s.path, s.dataset, s.split, LABEL_SEPARATOR.join(s.labels))
        h.update(("\x1f".join(fields) + "\n").encode("utf-8"))
    return h.hexdigest()


def _check_plan(out: Path, plan: dict[str, Any]) -> None:
    path = out / "plan.json"
    plan = json.loads(json.dumps(plan))  # the form it takes after a round trip through the file
    if path.exists():
        found = json.loads(path.read_text(encoding="utf-8"))
        differ = sorted(k for k in plan.keys() | found.keys() if plan.get(k) != found.get(k))
        if differ:
            raise ShardPlanError(
                f"{out} holds shards made with different {', '.join(differ)}; "
                "use a new out_dir, or delete this one to start over"
            )
        return
    with _atomic(path, "w") as fh:
        json.dump(plan, fh, indent=2)


def _is_complete(shard_dir: Path, k: int) -> bool:
    name = _shard_name(k)
    return all((shard_dir / f"{name}{suffix}").is_file() for suffix in (".index.csv", ".npy", ".rejects.csv"))


def _write_shard(
    shard_dir: Path, k: int, parts: list[np.ndarray], n_bins: int, index_rows: list[list], reject_rows: list[list]
) -> None:
    name = _shard_name(k)
    total = sum(p.shape[0] for p in parts)
    with _atomic(shard_dir / f"{name}.npy", "wb") as fh:
        # A standard .npy header, then the clips' rows in order: the file np.save would write
        # for the concatenated array, without holding that array in memory twice.
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f2")), "fortran_order": False,
                  "shape": (total, n_bins)}
        np.lib.format.write_array_header_1_0(fh, header)
        for part in parts:
            fh.write(part.tobytes())
    with _atomic(shard_dir / f"{name}.rejects.csv", "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(REJECT_COLUMNS)
        writer.writerows(reject_rows)
    # The index part goes last: its existence is what marks the shard complete.
    with _atomic(shard_dir / f"{name}.index.csv", "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(index_rows)


class _ShardBuilder:
    """One shard's features and index/rejects rows, filled in input order; CQT in batches."""

    def __init__(self, k: int, cqt: CQT, batch_size: int, times: dict[str, float]) -> None:
        self.shard = f"shards/{_shard_name(k)}.npy"
        self.cqt = cqt
        self.batch_size = batch_size
        self.times = times
        self.parts: list[np.ndarray] = []  # (frames_i, n_bins) float16 per stored clip
        self.index_rows: list[list] = []
        self.reject_rows: list[list] = []
        self.offset = 0
        self._batch: list[tuple[ClipSource, np.ndarray]] = []

    def reject(self, src: ClipSource, reason: str) -> None:
        self.reject_rows.append([src.clip_id, src.dataset, src.split, src.path, reason])

    def add(self, src: ClipSource, wave: np.ndarray) -> None:
        self._batch.append((src, wave))
        if len(self._batch) == self.batch_size:
            self.flush()

    def flush(self) -> None:
        """CQT the waiting clips and append them (in input order)."""
        if not self._batch:
            return
        t0 = time.perf_counter()
        features = cqt_batch(self.cqt, [wave for _, wave in self._batch])
        self.times["cqt_s"] += time.perf_counter() - t0
        sample_rate = self.cqt.config.sample_rate
        for (src, wave), feat in zip(self._batch, features):
            stored = np.ascontiguousarray(feat.numpy().T, dtype=np.float16)  # (frames, n_bins)
            values = stored.astype(np.float64)
            self.index_rows.append([
                src.clip_id, src.dataset, src.split, LABEL_SEPARATOR.join(src.labels), src.path,
                repr(wave.shape[0] / sample_rate), stored.shape[0], self.shard, self.offset,
                repr(float(values.mean())), repr(float(values.std())),
                repr(float(values.min())), repr(float(values.max())),
            ])
            self.parts.append(stored)
            self.offset += stored.shape[0]
        self._batch.clear()


@dataclass(frozen=True, slots=True)
class ShardJob:
    """Shard ``index`` of a plan and its input clips (stored or rejected), in ``clip_id`` order.

    Small and picklable: this is what travels to a Dask worker.
    """

    index: int
    sources: tuple[ClipSource, ...]

    @property
    def name(self) -> str:
        """``shard-00042``: the stem of the shard's files under ``out_dir/shards``."""
        return _shard_name(self.index)


@dataclass(frozen=True)
class ShardResult:
    """What :func:`featurize_shard` did for one shard; the timings are seconds in the process that ran it."""

    index: int
    clips: int  # clips stored in the shard
    rejected: int  # files of the shard that were rejected
    resumed: bool  # the shard was found complete and left as it was (then the counts are 0)
    decode_s: float = 0.0  # decoding, wherever it ran (summed over decode workers)
    decode_wait_s: float = 0.0  # this process waiting for decoded audio
    cqt_s: float = 0.0
    write_s: float = 0.0


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def plan_shards(sources: Iterable[ClipSource], clips_per_shard: int) -> list[ShardJob]:
    """Sort ``sources`` by ``clip_id`` and cut them into consecutive shards of ``clips_per_shard``.

    Shard ``k`` holds inputs ``[k * clips_per_shard, (k + 1) * clips_per_shard)`` of the
    sorted list (the last one may be shorter), so membership depends only on the input list.

    Raises:
        ValueError: ``clips_per_shard`` is not a positive integer, there are no sources, or
            two sources share a ``clip_id``.
    """
    _check_positive_int("clips_per_shard", clips_per_shard)
    ordered = sorted(sources, key=operator.attrgetter("clip_id"))
    if not ordered:
        raise ValueError("no sources to featurize")
    for a, b in zip(ordered, ordered[1:]):
        if a.clip_id == b.clip_id:
            raise ValueError(f"clip_id {a.clip_id!r} is used by both {a.path} and {b.path}; clip ids must be unique")
    return [
        ShardJob(k, tuple(ordered[start : start + clips_per_shard]))
        for k, start in enumerate(range(0, len(ordered), clips_per_shard))
    ]


def prepare_shards(
    out_dir: str | os.PathLike,
    jobs: Sequence[ShardJob],
    cqt_config: CQTConfig,
    *,
    clips_per_shard: int,
    min_seconds: float = 0.0,
) -> list[ShardJob]:
    """Make ``out_dir`` ready for ``jobs`` (from :func:`plan_shards`); return the jobs still to do.

    Creates ``out_dir/shards``, writes ``plan.json`` (or checks the one there against these
    settings and input list), and removes temporary files left by interrupted writes. Call it
    once per run, before any :func:`featurize_shard`: the clean-up must not race a writer.

    Raises:
        ValueError: ``jobs`` is not a plan of ``clips_per_shard`` clips per shard, or ``min_seconds < 0``.
        ShardPlanError: ``out_dir`` holds shards of other settings or another input list.
    """
    _check_positive_int("clips_per_shard", clips_per_shard)
    if not min_seconds >= 0.0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}")
    if not jobs or [j.index for j in jobs] != list(range(len(jobs))) or any(
        len(j.sources) != clips_per_shard for j in jobs[:-1]
    ) or not 1 <= len(jobs[-1].sources) <= clips_per_shard:
        raise ValueError(f"jobs must be plan_shards(sources, clips_per_shard={clips_per_shard}), in order")
    out = Path(out_dir)
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    _check_plan(out, {
        "format": _PLAN_FORMAT,
        "cqt": dataclasses.asdict(cqt_config),
        "cqt_implementation": CQT_IMPLEMENTATION,
        "clips_per_shard": clips_per_shard,
        "min_seconds": float(min_seconds),
        "sources": sum(len(j.sources) for j in jobs),
        "sources_sha256": _sources_digest(s for j in jobs for s in j.sources),
    })
    for stale in shard_dir.glob("shard-*.tmp"):  # left by an interrupted write
        stale.unlink()
    return [j for j in jobs if not _is_complete(shard_dir, j.index)]


def featurize_shard(
    job: ShardJob,
    out_dir: str | os.PathLike,
    cqt_config: CQTConfig,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    min_seconds: float = 0.0,
    cqt: CQT | None = None,
    decoded: Iterator[Decoded] | None = None,
) -> ShardResult:
    """Decode, CQT and write shard ``job`` under ``out_dir`` (prepared by :func:`prepare_shards`).

    A shard that is already complete is left as it is (``resumed=True``), so re-running a
    job, or running it after another process finished it, is harmless. Its files are
    written atomically, data file first and index part last (see the module docstring).

    Args:
        job: the shard to make.
        out_dir: the run's output folder.
        cqt_config: the transform; its ``sample_rate`` is the decoding rate.
        batch_size: clips per CQT call (padded to the longest in the batch).
        device: where the CQT runs when ``cqt`` is not given.
        min_seconds: files shorter than this are rejected.
        cqt: a ready :class:`CQT` of ``cqt_config`` to reuse across shards (built when None).
        decoded: the job's files already being decoded, one :class:`Decoded` per source in
            order (consumed exactly ``len(job.sources)`` items, so one stream can feed
            consecutive shards); when None the files are decoded here, one at a time.

    Raises:
        ValueError: a bad argument, or ``decoded`` yields another file than the job expects.
    """
    _check_positive_int("batch_size", batch_size)
    out = Path(out_dir)
    shard_dir = out / "shards"
    if _is_complete(shard_dir, job.index):
        if decoded is not None:  # keep a shared stream in step with the shards that follow
            for _ in job.sources:
                next(decoded, None)
        return ShardResult(job.index, 0, 0, resumed=True)
    if cqt is None:
        cqt = CQT.from_config(cqt_config).to(device).eval()
    elif cqt.config != cqt_config:
        raise ValueError(f"cqt was built with {cqt.config}, not the plan's {cqt_config}")
    if decoded is None:
        decoded = decode_files((s.file for s in job.sources), cqt_config.sample_rate, min_seconds=min_seconds)
    times = dict.fromkeys(("decode_s", "decode_wait_s", "cqt_s", "write_s"), 0.0)
    shard = _ShardBuilder(job.index, cqt, batch_size, times)
    for src in job.sources:
        t0 = time.perf_counter()
        item = next(decoded, None)
        times["decode_wait_s"] += time.perf_counter() - t0
        if item is None or item.path != src.file:
            raise ValueError(
                f"the decoded stream gave {item.path if item else 'nothing'} where {job.name} expects {src.file}"
            )
        times["decode_s"] += item.seconds
        if item.wave is None:
            shard.reject(src, item.reason)
        else:
            shard.add(src, item.wave)
    shard.flush()
    t0 = time.perf_counter()
    _write_shard(shard_dir, job.index, shard.parts, cqt_config.n_bins, shard.index_rows, shard.reject_rows)
    times["write_s"] += time.perf_counter() - t0
    return ShardResult(job.index, len(shard.index_rows), len(shard.reject_rows), resumed=False, **times)


def _merge(out: Path, n_shards: int) -> dict[str, Any]:
    """Concatenate the shard parts into index.csv and rejects.csv (streaming); return totals."""
    shard_dir = out / "shards"
    totals: dict[str, Any] = {"clips": 0, "frames": 0, "audio_seconds": 0.0, "rejected": 0}
    reasons: Counter[str] = Counter()
    frames_col, seconds_col = INDEX_COLUMNS.index("frames"), INDEX_COLUMNS.index("duration_s")
    reason_col = REJECT_COLUMNS.index("reason")
    for kind, columns in (("index", INDEX_COLUMNS), ("rejects", REJECT_COLUMNS)):
        with _atomic(out / f"{kind}.csv", "w") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for k in range(n_shards):
                part = shard_dir / f"{_shard_name(k)}.{kind}.csv"
                with part.open(newline="", encoding="utf-8") as src:
                    reader = csv.reader(src)
                    if tuple(next(reader, ())) != columns:
                        raise ShardPlanError(f"{part} does not start with the header {','.join(columns)}")
                    for record in reader:
                        writer.writerow(record)
                        if kind == "index":
                            totals["clips"] += 1
                            totals["frames"] += int(record[frames_col])
                            totals["audio_seconds"] += float(record[seconds_col])
                        else:
                            totals["rejected"] += 1
                            # "too short (0.1 s < 0.5 s)" -> "too short": group by kind, not by value.
                            reasons[record[reason_col].split(" (", 1)[0]] += 1
    totals["rejected_by_reason"] = dict(sorted(reasons.items()))
    return totals


def merge_shards(
    out_dir: str | os.PathLike, results: Iterable[ShardResult] = (), *, started: float | None = None
) -> dict[str, Any]:
    """Join the shards of a finished run into ``index.csv`` and ``rejects.csv``; write ``summary.json``.

    Args:
        out_dir: the run's output folder; every shard of its ``plan.json`` must be complete.
        results: the :class:`ShardResult` of every shard this run worked on (their counts
            and timings go into the summary; shards not listed count as resumed).
        started: a ``time.perf_counter()`` reading taken when the run began, for ``wall_s``
            (0.0 when None).

    Returns:
        the run's summary (see :func:`featurize_to_shards`); ``summary.json`` gets its corpus
        counts only, so that the store's bytes do not depend on the run that made them.

    Raises:
        IncompleteShardsError: a shard of the plan is not complete.
        ShardPlanError: the shards do not hold exactly the plan's inputs.
    """
    out = Path(out_dir)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    n_inputs = plan["sources"]
    n_shards = math.ceil(n_inputs / plan["clips_per_shard"])
    missing = [k for k in range(n_shards) if not _is_complete(out / "shards", k)]
    if missing:
        raise IncompleteShardsError(
            f"{len(missing)} of the {n_shards} shards of {out} are not complete (first: {_shard_name(missing[0])}); "
            "run the featurization again: it resumes from the complete ones"
        )
    totals = _merge(out, n_shards)
    if totals["clips"] + totals["rejected"] != n_inputs:
        raise ShardPlanError(
            f"the shards of {out} hold {totals['clips']} clips and {totals['rejected']} rejects, "
            f"but there are {n_inputs} inputs; delete {out} and run again"
        )
    written = [r for r in results if not r.resumed]
    times = {name: sum(getattr(r, name) for r in written) for name in ("decode_s", "decode_wait_s", "cqt_s", "write_s")}
    counts = {"inputs": n_inputs, **totals, "shards": n_shards}
    with _atomic(out / "summary.json", "w") as fh:
        json.dump(counts, fh, indent=2)
    return {
        **counts,
        "shards_resumed": n_shards - len(written),
        "clips_this_run": sum(r.clips for r in written),
        "wall_s": 0.0 if started is None else time.perf_counter() - started,
        **times,
    }


def featurize_to_shards(
    sources: Iterable[ClipSource],
    out_dir: str | os.PathLike,
    cqt_config: CQTConfig,
    *,
    clips_per_shard: int = 256,
    workers: int = 0,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    min_seconds: float = 0.0,
    max_in_flight: int | None = None,
    on_progress: Callable[[ShardProgress], None] | None = None,
) -> dict[str, Any]:
    """Decode, CQT and store every clip of ``sources`` in shards under ``out_dir``; resumable.

    The single-process path: :func:`plan_shards`, :func:`prepare_shards`, then
    :func:`featurize_shard` for each unfinished shard in order, fed by one decoding stream
    (``workers`` processes) that runs across shard boundaries, then :func:`merge_shards`.
    ``flows/featurize.py`` runs the same steps with the shards spread over a Dask cluster.

    Args:
        sources: the clips; their ``clip_id`` must be unique. Sorted by ``clip_id`` and cut
            into shards of ``clips_per_shard`` consecutive clips.
        out_dir: output folder (created); see the module docstring for its layout. A folder
            holding an interrupted run with the same settings and input list is resumed.
        cqt_config: the transform; its ``sample_rate`` is the decoding rate.
        clips_per_shard: input clips per shard (stored plus rejected).
        workers: decoding processes; 0 decodes in the calling process.
        batch_size: clips per CQT call (padded to the longest in the batch).
        device: where the CQT runs, e.g. ``"cuda"``.
        min_seconds: files shorter than this are rejected.
        max_in_flight: decode jobs ahead of the CQT (default ``2 * workers``).
        on_progress: called with a :class:`ShardProgress` after each shard is written; an
            exception it raises stops the run, leaving the shards written so far complete.

    Returns:
        the summary: the corpus counts also written to ``summary.json`` (``inputs``, ``clips``,
        ``rejected``, ``rejected_by_reason`` (reason kind -> count), ``frames``, ``audio_seconds``
        (of the stored clips), ``shards``), then this run's ``shards_resumed`` (found complete),
        ``clips_this_run``, ``wall_s``, ``decode_s`` (summed over workers), ``decode_wait_s``
        (the main process waiting for decoded audio), ``cqt_s`` and ``write_s``.

    Raises:
        ValueError: a bad argument, no sources, or a repeated ``clip_id``.
        ShardPlanError: ``out_dir`` holds shards of other settings or another input list.
    """
    _check_positive_int("clips_per_shard", clips_per_shard)
    _check_positive_int("batch_size", batch_size)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    start = time.perf_counter()
    jobs = plan_shards(sources, clips_per_shard)
    pending = prepare_shards(out_dir, jobs, cqt_config, clips_per_shard=clips_per_shard, min_seconds=min_seconds)
    cqt = CQT.from_config(cqt_config).to(device).eval()
    results = []
    stream = decode_files(
        (src.file for job in pending for src in job.sources),
        cqt_config.sample_rate,
        min_seconds=min_seconds,
        workers=workers,
        max_in_flight=max_in_flight,
    )
    try:
        for done, job in enumerate(pending, start=len(jobs) - len(pending) + 1):
            result = featurize_shard(
                job, out_dir, cqt_config, batch_size=batch_size, min_seconds=min_seconds, cqt=cqt, decoded=stream
            )
            results.append(result)
            if on_progress is not None:
                on_progress(ShardProgress(job.index, done, len(jobs), result.clips, result.rejected))
    finally:
        stream.close()
    return merge_shards(out_dir, results, started=start)


class _Rows(Sequence):
    """Read-only view of a :class:`FeatureStore`'s index: ``rows[i]`` is a dict per
    :data:`INDEX_COLUMNS` (ints and floats parsed), built on access."""

    def __init__(self, columns: dict[str, Any], length: int) -> None:
        self._columns = columns
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        i = operator.index(index)
        if not -self._length <= i < self._length:
            raise IndexError(f"row {i} out of range for {self._length} rows")
        return {name: self._columns[name][i].item() if isinstance(self._columns[name], np.ndarray)
                else self._columns[name][i] for name in INDEX_COLUMNS}


class FeatureStore(Sequence):
    """The clips of a finished :func:`featurize_to_shards` run as a ``Sequence[Tensor]``.

    ``store[i]`` is clip ``i``'s log-CQT, a ``(n_bins, frames_i)`` float32 CPU tensor, read
    from its memory-mapped shard (slices give lists). Clips are in ``index.csv`` order
    (sorted by ``clip_id``), optionally only those of one ``split`` and/or ``dataset``.

    The index is held in columns (numpy arrays and lists of shared strings), not one dict
    per row, so a million clips cost ~300 MB rather than ~1.5 GB. At most ``max_open_shards`` shards are mapped
    at a time (least recently used closed first): each map holds a file descriptor.
    Pickling (e.g. into DataLoader workers) carries the index, not the maps.

    Attributes:
        rows: the index rows (dicts, see :data:`INDEX_COLUMNS`).
        labels: each clip's labels as a tuple.
        splits: each clip's split.
        clip_ids: each clip's id.
        cqt_config: the :class:`CQTConfig` the features were made with.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        split: str | None = None,
        dataset: str | None = None,
        max_open_shards: int = 64,
    ) -> None:
        if isinstance(max_open_shards, bool) or not isinstance(max_open_shards, int) or max_open_shards < 1:
            raise ValueError(f"max_open_shards must be a positive integer, got {max_open_shards!r}")
        self.root = Path(out_dir)
        index = self.root / "index.csv"
        if not index.is_file():
            raise FileNotFoundError(f"{index} not found; run featurize_to_shards into {self.root} to completion first")
        plan = json.loads((self.root / "plan.json").read_text(encoding="utf-8"))
        self.cqt_config = CQTConfig(**plan["cqt"])
        self.max_open_shards = max_open_shards

        # Numbers go straight into typed arrays and repeated strings are shared, so the
        # index costs ~300 bytes per clip (mostly its id and path strings).
        raw: dict[str, Any] = {
            name: array.array("d") if name in _FLOAT_COLUMNS else array.array("q") if name in _INT_COLUMNS else []
            for name in INDEX_COLUMNS
        }
        shard_names: dict[str, int] = {}
        shard_ids = array.array("i")
        interned: dict[str, str] = {}
        split_col, dataset_col = INDEX_COLUMNS.index("split"), INDEX_COLUMNS.index("dataset")
        with index.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            if tuple(next(reader, ())) != INDEX_COLUMNS:
                raise ValueError(f"{index} does not start with the header {','.join(INDEX_COLUMNS)}")
            for record in reader:
                if (split is not None and record[split_col] != split) or (
                    dataset is not None and record[dataset_col] != dataset
                ):
                    continue
                for name, value in zip(INDEX_COLUMNS, record):
                    if name in _FLOAT_COLUMNS:
                        raw[name].append(float(value))
                    elif name in _INT_COLUMNS:
                        raw[name].append(int(value))
                    elif name in ("dataset", "split", "label", "shard"):
                        raw[name].append(interned.setdefault(value, value))
                    else:
                        raw[name].append(value)
                shard_ids.append(shard_names.setdefault(record[INDEX_COLUMNS.index("shard")], len(shard_names)))
        self._columns: dict[str, Any] = {
            name: np.frombuffer(values, dtype=np.float64 if values.typecode == "d" else np.int64)
            if isinstance(values, array.array) else values
            for name, values in raw.items()
        }
        self._shard_ids = np.frombuffer(shard_ids, dtype=np.int32)
        self._shard_paths = list(shard_names)
        self._length = len(shard_ids)
        label_tuples: dict[str, tuple[str, ...]] = {}
        self.labels = [
            label_tuples.setdefault(s, tuple(s.split(LABEL_SEPARATOR)) if s else ()) for s in raw["label"]
        ]
        self.splits: list[str] = raw["split"]
        self.clip_ids: list[str] = raw["clip_id"]
        self.rows = _Rows(self._columns, self._length)
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return self._length

    def _shard(self, shard_id: int) -> np.ndarray:
        arr = self._open.get(shard_id)
        if arr is not None:
            self._open.move_to_end(shard_id)
            return arr
        path = self.root / self._shard_paths[shard_id]
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or arr.shape[1] != self.cqt_config.n_bins or arr.dtype != np.float16:
            raise ValueError(
                f"{path} holds {arr.dtype} {arr.shape}, expected float16 (frames, {self.cqt_config.n_bins}); "
                "the store is corrupt: featurize again"
            )
        self._open[shard_id] = arr
        if len(self._open) > self.max_open_shards:
            self._open.popitem(last=False)
        return arr

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        i = operator.index(index)
        if not -self._length <= i < self._length:
            raise IndexError(f"clip {i} out of range for {self._length} clips")
        i %= self._length
        offset, frames = int(self._columns["offset"][i]), int(self._columns["frames"][i])
        block = self._shard(int(self._shard_ids[i]))[offset : offset + frames]  # (frames, n_bins) float16
        if block.shape[0] != frames:
            raise ValueError(
                f"{self._shard_paths[self._shard_ids[i]]} ends before clip {self.clip_ids[i]} "
                f"(rows {offset}..{offset + frames}); the store is corrupt: featurize again"
            )
        return torch.from_numpy(np.ascontiguousarray(block.T, dtype=np.float32))  # (n_bins, frames)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state


def pretraining_clips(out_dir: str | os.PathLike, splits: Sequence[str]) -> tuple[torch.utils.data.Dataset, str]:
    """The clips pre-training reads from the store at ``out_dir``, and a digest of which they are.

    The clips of the store whose split is in ``splits`` (the test split never belongs there) and,
    when ``splits`` holds :data:`UNLABELED`, every clip of the sub-store ``out_dir/unlabeled``, in
    that order. The digest (sha256, hex) covers each store's ``plan.json`` (CQT settings and the
    digest of its input files) and the selected clip ids: a resumable run keyed by it is never
    resumed on other data.

    Raises:
        FileNotFoundError: a store (or the ``unlabeled`` sub-store asked for) is missing or unfinished.
    """
    root = Path(out_dir)
    store = FeatureStore(root)
    picked = [i for i, split in enumerate(store.splits) if split in splits]
    digest = hashlib.sha256((root / "plan.json").read_bytes())
    digest.update("\n".join(store.clip_ids[i] for i in picked).encode())
    parts: list[torch.utils.data.Dataset] = [torch.utils.data.Subset(store, picked)]
    if UNLABELED in splits:
        unlabeled = FeatureStore(root / UNLABELED)
        digest.update((root / UNLABELED / "plan.json").read_bytes())
        digest.update("\n".join(unlabeled.clip_ids).encode())
        parts.append(unlabeled)
    parts = [part for part in parts if len(part)] or parts[:1]
    clips = torch.utils.data.ConcatDataset(parts) if len(parts) > 1 else parts[0]
    return clips, digest.hexdigest()


def _store_rows(clips: torch.utils.data.Dataset) -> Iterator[dict[str, Any]]:
    """The index rows of what :func:`pretraining_clips` returns (a store, a ``Subset`` of one, or
    a ``ConcatDataset`` of those), in clip order; no feature is read."""
    for part in clips.datasets if isinstance(clips, torch.utils.data.ConcatDataset) else [clips]:
        if isinstance(part, torch.utils.data.Subset):
            store, index = part.dataset, part.indices
        else:
            store, index = part, range(len(part))
        for i in index:
            yield store.rows[i]


def audio_hours(clips: torch.utils.data.Dataset) -> float:
    """Hours of audio in what :func:`pretraining_clips` returns, from the index's ``duration_s``."""
    return sum(row["duration_s"] for row in _store_rows(clips)) / 3600


def median_clip_seconds(clips: torch.utils.data.Dataset) -> float:
    """The median length in seconds of what :func:`pretraining_clips` returns (the clip length a model was
    trained on, stored in its checkpoint so that longer files are embedded in windows of it)."""
    durations = sorted(row["duration_s"] for row in _store_rows(clips))
    mid = len(durations) // 2
    return durations[mid] if len(durations) % 2 else (durations[mid - 1] + durations[mid]) / 2


def clip_paths(clips: torch.utils.data.Dataset) -> list[str]:
    """Each clip's audio file as its index stores it (of what :func:`pretraining_clips` returns)."""
    return [row["path"] for row in _store_rows(clips)]


def clip_recordings(
    clips: torch.utils.data.Dataset, recordings: Mapping[str, str], root: str | os.PathLike = "."
) -> list[str]:
    """Each clip's recording (of what :func:`pretraining_clips` returns): ``recordings[file]`` for a
    clip whose audio file is listed there (:func:`s3t.manifest.read_recordings`: absolute paths,
    links resolved), else the clip's path as its index stores it.

    Index paths may be relative (the pipeline's stages store them relative to the repository, so a
    store's bytes do not depend on where the checkout is); they are taken relative to ``root``.

    Raises:
        ValueError: ``recordings`` lists files but none of the clips' files, which means the index
            paths are relative to another folder than ``root`` (every clip would silently count as a
            recording of its own).
    """
    rows = clip_paths(clips)
    files = [os.path.realpath(os.path.join(root, path)) for path in rows]
    found = [recordings.get(file) for file in files]
    if recordings and rows and all(f is None for f in found):
        raise ValueError(
            f"none of the {len(rows)} clips' files (first: {files[0]}) is among the {len(recordings)} files "
            f"of the recordings table; pass the folder the index paths are relative to as root"
        )
    return [rec if rec is not None else path for rec, path in zip(found, rows)]


class Recompressed(torch.utils.data.Dataset):
    """Stored log-CQT clips seen at ``factor`` times the time compression they were made with.

    Item ``i`` is ``log(compress_time(exp(clips[i]), factor))``, a ``(F, ceil(T_i / factor))``
    float32 tensor: the frames are averaged on the linear magnitude, as the CQT compresses
    (:func:`s3t.cqt.compress_time` before the log), so it equals, up to the store's float16
    rounding, what featurizing with ``time_compression * factor`` stores (all frames of it when the
    store's compression is 1; otherwise the last frame differs, since the store's last, partial
    frame is averaged in as a whole one). It lets an ablation try
    a coarser compression (paper 3.2 compresses 100x) without featurizing the audio again.
    """

    def __init__(self, clips: Sequence[torch.Tensor] | torch.utils.data.Dataset, factor: int) -> None:
        _check_positive_int("factor", factor)
        self.clips, self.factor = clips, factor

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return torch.log(compress_time(self.clips[index].float().exp(), self.factor))
