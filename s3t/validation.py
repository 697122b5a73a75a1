"""Data validation of the feature index, of clip groups and of the augmentation draws (paper 2.3, 3.1, 3.2).

Three Great Expectations (GX Core 1.x) suites guard the pipeline:

* ``features_<dataset>`` checks the feature index (one row per featurised clip, written
  as ``index.csv`` by the featuriser; read it with :func:`read_index`) against the
  published splits (paper 3.1) and against what a log-CQT (paper 3.2) can contain.
* ``groups_<dataset>`` checks clip groups (one row per clip: ``path``, ``split``, ``group``,
  the group being the clip's track, artist or album; see :func:`validate_groups`). Clips
  of one track are near-duplicates, so a track with clips in two of train/valid/test lets
  the probe's test score reward memorisation, and a test track whose audio is also in the
  self-supervised pre-training corpus (split ``unlabeled``) has been seen by the encoder
  before it is tested. Neither is visible in a clip's own row, hence derived per-group
  columns. Train and valid tracks may be pre-trained on: the encoder never sees their
  labels, and the test score stays one on unseen audio.
* ``augmentations`` checks a large sample of :class:`s3t.augment.MusicAugment` draws
  (paper 2.3): every drawn value inside its range and every transform applied at its
  probability p, within ``tolerance_sigmas`` binomial standard errors.

Each ``validate_*`` call writes ``<out_dir>/<suite>.json`` (a readable summary plus GX's
own result JSON) and GX's HTML Data Docs under ``<out_dir>/data_docs/`` (``index.html``),
then raises :class:`ValidationError`, naming every failed expectation on its own line,
unless ``raise_on_failure=False``.

How GX runs here. Every call builds a fresh *ephemeral* context from an explicit
configuration, so nothing is read from or written to a ``great_expectations.yml``, the home
directory or the working directory, and GX Cloud is never consulted (``mode="ephemeral"``):

* analytics off: ``analytics_enabled=False`` in the context config (GX 1.x sends events
  only when both this flag and the ``GX_ANALYTICS_ENABLED`` environment variable allow it;
  the config flag is per-context, so the library does not touch the process environment);
* progress bars off (they would clutter pipeline logs);
* validation results are stored as JSON under ``<out_dir>/gx/validations/``, so the Data
  Docs index of an ``out_dir`` lists every run validated into it (GX's usual history);
  suites, datasources, validation definitions and checkpoints live in memory (a stored
  suite would make GX compare all expectations pairwise on every update, which is slow);
* Data Docs are built by a checkpoint's ``UpdateDataDocsAction`` into a single local site.
  Building needs no network; the generated pages link Bootstrap/Vega from public CDNs, so
  a browser without internet shows them unstyled but readable.

Ambiguities and our choices:

* Value range of the log-CQT statistics. :class:`s3t.cqt.CQT` returns ``log(|CQT| + 1e-6)``,
  so no value is below ``log(1e-6) = -13.82``. The CQT (librosa normalisation)
  scales bin k's unit-L1 kernel by ``sqrt(L_k)`` (L_k its length in samples), so
  for audio in [-1, 1] a magnitude is at most ``max_k sqrt(L_k) = sqrt(11341) = 106.5`` at the
  paper's settings (C1 lowest bin), i.e. a log below 4.67; time compression averages
  magnitudes and cannot exceed it. Measured on 4 s signals: a full-scale 55 Hz sine peaks at
  3.72, a full-scale 110 Hz square wave at 3.61, full-scale white noise at 0.88, silence sits
  at -13.82. :data:`LOG_CQT_RANGE` = (-14, 5) is that hard interval with a margin for decoder
  overshoot above full scale (up to 1.39x) and float rounding. Pass ``value_range`` if the
  front end changes (another eps, another normalisation).
* Unlabeled pre-training audio has split ``""`` and label ``""``. An index is treated as
  labeled when ``expected_splits`` or ``label_set`` is given (override with ``labeled``).
  Missing values are never filled in: CSV readers turn ``""`` into NaN, which the not-null
  expectations report, hence :func:`read_index`.
* "No clip in two splits" is checked three ways: ``clip_id`` unique, ``path`` unique, and a
  derived column ``splits_sharing_clip`` (distinct splits among the rows that share the
  clip id or the path, whichever is larger) that must be 1, so the report names the leak
  directly rather than only a duplicate.
* ``n_bins`` is not an index column in the featuriser's contract; if the index carries an
  ``n_bins`` column it must equal ``n_bins`` everywhere, and ``n_bins`` is recorded in the
  suite's meta either way.
* Augmentation draws are flattened to one row per draw per view (query, key); the crop
  columns come from ``crop.*[:, view]``. Per-segment tables are checked "where kept" (segment
  j exists iff ``n > j``) with GX row conditions, and their padding must be exactly 0.
  Application rates pool both views (they are independent draws with the same p).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from s3t.augment import MusicAugment
from s3t.manifest import LABEL_SEPARATOR, SPLITS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "GROUP_SPLITS",
    "INDEX_COLUMNS",
    "LOG_CQT_RANGE",
    "PUBLISHED_SPLITS",
    "ValidationError",
    "ValidationReport",
    "expected_split_counts",
    "flatten_augmentation_params",
    "read_index",
    "sample_augmentation_params",
    "validate_augmentations",
    "validate_features",
    "validate_groups",
]

PUBLISHED_SPLITS: dict[str, dict[str, int]] = {
    "gtzan": {"train": 443, "valid": 197, "test": 290},
    "fma_small": {"train": 6400, "valid": 800, "test": 800},
    "mtat": {"train": 18706, "valid": 1825, "test": 5329},
}
"""Clips per split of the paper's evaluation datasets (paper 3.1; GTZAN: the fault-filtered
split). FMA-small tracks 099134, 108925 and 133297 hold no audio; the dataset loader records
them as skipped, so pass ``expected_split_counts("fma_small", skipped)``."""

LOG_CQT_RANGE = (-14.0, 5.0)
"""Bounds of a ``log(|CQT| + 1e-6)`` value of audio in [-1, 1] (see the module docstring)."""

_STRING_COLUMNS = ("clip_id", "dataset", "split", "label", "path", "shard")
_NUMERIC_COLUMNS = ("duration_s", "frames", "offset", "mean", "std", "min", "max")
INDEX_COLUMNS = _STRING_COLUMNS + _NUMERIC_COLUMNS
"""Columns the feature index must have (the featuriser's ``index.csv`` contract)."""

# Columns validate_groups needs (one row per clip).
_GROUP_FRAME_COLUMNS = ("path", "split", "group")

GROUP_SPLITS = (*SPLITS, "unlabeled")
"""Splits of a groups frame: a task's labeled splits, or ``unlabeled`` for pre-training-only clips."""

_SITE = "s3t_local_site"
_VIEWS = ("q", "k")


class ValidationError(ValueError):
    """Data failed a validation suite; the message lists every failed expectation, one per line.

    Attributes:
        report: the :class:`ValidationReport` (paths to the JSON summary and the Data Docs).
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [f"suite {report.suite!r} failed {len(report.failures)} of {len(report.results)} expectations:"]
        lines += [f"  - {r['message']}" for r in report.failures]
        lines.append(f"details: {report.json_path} and {report.html_path}")
        super().__init__("\n".join(lines))


@dataclass
class ValidationReport:
    """Outcome of one suite run.

    Attributes:
        suite: suite name (also the JSON file's stem).
        success: True when every expectation passed.
        results: one dict per expectation, in suite order: ``expectation`` (GX type),
            ``description``, ``column``, ``kwargs``, ``success``, ``observed``,
            ``element_count``, ``unexpected_count``, ``unexpected_examples``, ``exception``
            and ``message`` (one readable line).
        json_path: ``<out_dir>/<suite>.json``.
        html_path: the Data Docs site's ``index.html``.
    """

    suite: str
    success: bool
    results: list[dict]
    json_path: Path
    html_path: Path
    failures: list[dict] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.failures = [r for r in self.results if not r["success"]]


# --------------------------------------------------------------------------- feature index


def expected_split_counts(dataset: str, skipped: Mapping[str, int] | None = None) -> dict[str, int]:
    """Published clips per split of ``dataset`` minus ``skipped`` (split -> clips the loader skipped)."""
    if dataset not in PUBLISHED_SPLITS:
        raise ValueError(f"no published splits for dataset {dataset!r}; known: {', '.join(PUBLISHED_SPLITS)}")
    counts = dict(PUBLISHED_SPLITS[dataset])
    for split, n in (skipped or {}).items():
        if split not in counts or not 0 <= n <= counts[split]:
            raise ValueError(f"cannot skip {n} clips of split {split!r}; {dataset} has {counts}")
        counts[split] -= n
    return counts


def read_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read a featuriser ``index.csv`` with the dtypes the features suite expects.

    String columns stay strings (``""`` is kept, not turned into NaN, and ids such as FMA's
    ``"099134"`` keep their zeros); numeric columns parse an empty cell or ``nan`` as NaN, so
    missing statistics are reported by the suite instead of being hidden.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature index {path} does not exist")
    header = pd.read_csv(path, nrows=0).columns
    strings = {c: str for c in _STRING_COLUMNS if c in header}
    na_values = {c: ["", "nan", "NaN"] for c in header if c not in strings}
    return pd.read_csv(path, dtype=strings, keep_default_na=False, na_values=na_values)


def _splits_sharing_clip(index: pd.DataFrame) -> pd.Series:
    """Per row: distinct splits among rows with the same clip_id, or the same path (the larger)."""
    # A null split counts as a split of its own here; the not-null expectation reports it.
    frame = index.assign(split=index["split"].astype(object).where(index["split"].notna(), "\0null"))
    counts = [
        frame.groupby(key, dropna=False)["split"].transform("nunique")
        for key in ("clip_id", "path")
        if key in frame.columns
    ]
    out = counts[0]
    for other in counts[1:]:
        out = np.maximum(out, other)
    return out.astype("int64")


def _label_regex(label_set: set[str]) -> str:
    """Regex matching '' or tags of ``label_set`` joined by the separator, nothing else."""
    tag = "(?:" + "|".join(re.escape(t) for t in sorted(label_set)) + ")"
    sep = re.escape(LABEL_SEPARATOR)
    return rf"\A(?:{tag}(?:{sep}{tag})*)?\Z"


def validate_features(
    index: pd.DataFrame,
    *,
    dataset: str,
    expected_splits: Mapping[str, int] | None,
    label_set: set[str] | None,
    n_bins: int,
    out_dir: str | os.PathLike,
    value_range: tuple[float, float] = LOG_CQT_RANGE,
    labeled: bool | None = None,
    suite: str | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate a feature index (one row per clip, columns :data:`INDEX_COLUMNS`).

    Args:
        index: the index (read ``index.csv`` with :func:`read_index`); not modified.
        dataset: the dataset name every row's ``dataset`` must equal.
        expected_splits: split -> clip count (e.g. :func:`expected_split_counts`), or None
            to skip the count checks.
        label_set: allowed tags (a row's ``label`` is tags joined by ``'|'``, may be empty),
            or None to skip the label check.
        n_bins: CQT bins of the run (checked against an ``n_bins`` column if present).
        out_dir: where ``<suite>.json``, ``gx/`` and ``data_docs/`` go.
        value_range: (lo, hi) bounds of the clip ``mean``/``min``/``max`` statistics;
            ``std`` must lie in (0, hi - lo].
        labeled: whether rows need a train/valid/test split; default: True when
            ``expected_splits`` or ``label_set`` is given. Unlabeled rows need split and
            label ``""``.
        suite: suite name, default ``features_<dataset>``.
        raise_on_failure: raise :class:`ValidationError` when an expectation fails.

    Returns:
        The :class:`ValidationReport`.
    """
    import pandas as pd

    if not isinstance(index, pd.DataFrame):
        raise ValueError(f"index must be a pandas DataFrame, got {type(index).__name__}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    lo, hi = (float(v) for v in value_range)
    if not lo < hi:
        raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {value_range}")
    if expected_splits is not None:
        bad = {k: v for k, v in expected_splits.items() if k not in SPLITS or int(v) != v or v < 0}
        if bad:
            raise ValueError(f"expected_splits must map {'/'.join(SPLITS)} to counts >= 0, got {bad}")
    if label_set is not None:
        bad_tags = sorted(t for t in label_set if not t or LABEL_SEPARATOR in t or t != t.strip())
        if not label_set or bad_tags:
            raise ValueError(
                f"label_set must hold non-empty, unpadded tags without {LABEL_SEPARATOR!r}, got {bad_tags}"
            )
    if labeled is None:
        labeled = expected_splits is not None or label_set is not None

    gx, gxe, Column = _import_gx()
    present = set(index.columns)
    df = index.copy()
    if {"split"} <= present and present & {"clip_id", "path"}:
        df["splits_sharing_clip"] = _splits_sharing_clip(df)
    has = set(df.columns).__contains__

    ex: list[Any] = [
        gxe.ExpectColumnToExist(column=c, description=f"required column {c} exists") for c in INDEX_COLUMNS
    ]
    ex.append(gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the index is not empty"))
    for c in INDEX_COLUMNS:
        if has(c):
            ex.append(gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"no null {c} (empty text is '')"))
    if has("clip_id"):
        ex.append(gxe.ExpectColumnValuesToBeOfType(column="clip_id", type_="str", description="clip_id is text"))
        ex.append(gxe.ExpectColumnValuesToBeUnique(column="clip_id", description="clip_id is unique"))
    if has("path"):
        ex.append(gxe.ExpectColumnValuesToBeUnique(column="path", description="no audio file is indexed twice"))
    if has("splits_sharing_clip"):
        ex.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="splits_sharing_clip",
                min_value=1,
                max_value=1,
                description="no clip is in two splits (same clip_id or path under different splits)",
            )
        )
    if has("dataset"):
        ex.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="dataset", value_set=[dataset], description=f"every row is from {dataset}"
            )
        )
    if has("split"):
        allowed = sorted(expected_splits) if (labeled and expected_splits is not None) else list(SPLITS)
        ex.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="split",
                value_set=allowed if labeled else [""],
                description=f"split is one of {allowed}" if labeled else "unlabeled rows have split ''",
            )
        )
        for split, count in (expected_splits or {}).items():
            ex.append(
                gxe.ExpectTableRowCountToEqual(
                    value=int(count),
                    row_condition=Column("split") == split,
                    description=f"{split} split has the expected {int(count)} clips",
                )
            )
    if has("label"):
        if not labeled:
            ex.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column="label", value_set=[""], description="unlabeled rows have label ''"
                )
            )
        elif label_set is not None:
            ex.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column="label",
                    regex=_label_regex(label_set),
                    description=f"every {LABEL_SEPARATOR!r}-separated tag is in the label set ({len(label_set)} tags)",
                )
            )
    if has("frames"):
        ex.append(
            gxe.ExpectColumnValuesToBeBetween(column="frames", min_value=1, description="every clip has >= 1 frame")
        )
    if has("duration_s"):
        ex.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="duration_s", min_value=0, strict_min=True, description="every clip lasts > 0 s"
            )
        )
    if has("shard"):
        ex.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column="shard", regex=r"^shards/shard-\d{5}\.npy$", description="shard is a data file under shards/"
            )
        )
    if has("offset"):
        ex.append(gxe.ExpectColumnValuesToBeBetween(column="offset", min_value=0, description="offset >= 0"))
    if has("shard") and has("offset"):
        ex.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=["shard", "offset"], description="no two clips start at the same shard offset"
            )
        )
    for c in ("mean", "min", "max"):
        if has(c):
            ex.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=c, min_value=lo, max_value=hi, description=f"clip {c} is finite and in [{lo}, {hi}]"
                )
            )
    if has("std"):
        ex.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="std",
                min_value=0,
                max_value=hi - lo,
                strict_min=True,
                description=f"clip std is in (0, {hi - lo}] (not constant, finite)",
            )
        )
    for a, b in (("max", "mean"), ("mean", "min")):
        if has(a) and has(b):
            ex.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=a, column_B=b, or_equal=True, description=f"clip {a} >= clip {b}"
                )
            )
    if has("n_bins"):
        ex.append(
            gxe.ExpectColumnValuesToBeInSet(column="n_bins", value_set=[n_bins], description=f"n_bins is {n_bins}")
        )

    meta = {
        "dataset": dataset,
        "n_bins": n_bins,
        "value_range": [lo, hi],
        "labeled": labeled,
        "expected_splits": dict(expected_splits) if expected_splits is not None else None,
    }
    id_columns = ["clip_id"] if has("clip_id") else []
    name = suite or f"features_{dataset}"
    return _run_suite(gx, df, name, ex, out_dir, meta, id_columns=id_columns, raise_on_failure=raise_on_failure)


# --------------------------------------------------------------------------- clip groups


def _group_leak_columns(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per row: distinct labeled splits in its group, and 1 where its group has a test and an unlabeled row.

    ``frame`` must have a default RangeIndex (the results are aligned to it).
    """
    import pandas as pd

    group, split = frame["group"], frame["split"]
    named = group.notna() & (group.astype(str).str.strip() != "")
    # A row without a group is a group of its own here: the null/empty expectations report it,
    # and pooling all such rows would report a leak between unrelated clips.
    key = group.astype(str).where(named, pd.Series([f"\0row {i}" for i in range(len(frame))], dtype=object))
    key = key.to_numpy()
    labeled = split.where(split.isin(SPLITS))  # nunique skips the NaN of every other split
    sharing = labeled.groupby(key).transform("nunique").astype("int64")
    has_test = split.eq("test").groupby(key).transform("any")
    has_unlabeled = split.eq("unlabeled").groupby(key).transform("any")
    return sharing, (has_test & has_unlabeled).astype("int64")


def validate_groups(
    frame: pd.DataFrame,
    *,
    dataset: str,
    out_dir: str | os.PathLike,
    suite: str | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate clip groups: no track in two splits of the task, no test track in pre-training.

    Expectations: columns ``path``, ``split`` and ``group`` exist; at least one row; no null
    ``path``, ``split`` or ``group`` and no empty (blank) ``group``; ``split`` in
    :data:`GROUP_SPLITS`; the derived ``splits_sharing_group`` (distinct train/valid/test splits among the rows of
    the row's group, 0 for a group of unlabeled rows only) is <= 1; the derived
    ``test_group_in_pretraining`` (1 where the row's group has both a ``test`` and an
    ``unlabeled`` row) is 0. Failure examples name rows by ``group`` and ``path``.

    Args:
        frame: one row per clip with columns ``path``, ``split``, ``group`` (others are
            kept and ignored); the same path may appear twice, e.g. as ``train`` and as
            ``unlabeled``. Not modified.
        dataset: the dataset name (recorded in the suite's meta and its default name).
        out_dir: where ``<suite>.json``, ``gx/`` and ``data_docs/`` go.
        suite: suite name, default ``groups_<dataset>``.
        raise_on_failure: raise :class:`ValidationError` when an expectation fails.

    Returns:
        The :class:`ValidationReport`.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    gx, gxe, _ = _import_gx()
    # A fresh RangeIndex: the derived columns are computed by position, whatever the caller's index.
    df = frame.reset_index(drop=True)
    if {"split", "group"} <= set(df.columns):
        df["splits_sharing_group"], df["test_group_in_pretraining"] = _group_leak_columns(df)
    has = set(df.columns).__contains__

    ex: list[Any] = [
        gxe.ExpectColumnToExist(column=c, description=f"required column {c} exists") for c in _GROUP_FRAME_COLUMNS
    ]
    ex.append(gxe.ExpectTableRowCountToBeBetween(min_value=1, description="the frame is not empty"))
    for c in _GROUP_FRAME_COLUMNS:
        if has(c):
            ex.append(gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"no null {c}"))
    if has("group"):
        ex.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column="group", regex=r"\S", description="no empty group (every clip names its track)"
            )
        )
    if has("split"):
        ex.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="split", value_set=list(GROUP_SPLITS), description=f"split is one of {list(GROUP_SPLITS)}"
            )
        )
    if has("splits_sharing_group"):
        ex.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="splits_sharing_group",
                min_value=0,
                max_value=1,
                description="no track in two splits of the task (train/valid/test of one group)",
            )
        )
    if has("test_group_in_pretraining"):
        ex.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="test_group_in_pretraining",
                value_set=[0],
                description="no test track is used for pre-training (a group with test and unlabeled rows)",
            )
        )

    meta = {
        "dataset": dataset,
        "rows": len(df),
        "groups": int(df["group"].nunique()) if has("group") else None,
        "splits": list(GROUP_SPLITS),
    }
    # Examples name the group too: the fix is moving a whole group, not one clip.
    id_columns = [c for c in ("group", "path") if has(c)]
    name = suite or f"groups_{dataset}"
    return _run_suite(gx, df, name, ex, out_dir, meta, id_columns=id_columns, raise_on_failure=raise_on_failure)


# --------------------------------------------------------------------------- augmentations


def sample_augmentation_params(
    augment: MusicAugment,
    n_draws: int = 1000,
    *,
    n_bins: int = 84,
    frames: int | None = None,
    seed: int = 0,
    batch_size: int = 250,
) -> dict[str, torch.Tensor]:
    """Draw ``n_draws`` augmentation parameter sets from ``augment`` on random input.

    The input is standard normal noise of shape (batch, n_bins, frames) (default
    ``frames = augment.out_frames``) with valid lengths uniform in {1..frames}, so crops of
    very short clips are exercised too. Draws come from a CPU ``torch.Generator`` seeded with
    ``seed``, ``batch_size`` items at a time.

    Returns:
        ``augment``'s params dict with every tensor concatenated over draws: (n_draws, ...).
    """
    if n_draws < 1 or batch_size < 1:
        raise ValueError(f"n_draws and batch_size must be >= 1, got {n_draws} and {batch_size}")
    frames = augment.out_frames if frames is None else frames
    if frames < 1 or n_bins < 1:
        raise ValueError(f"n_bins and frames must be >= 1, got {n_bins} and {frames}")
    generator = torch.Generator().manual_seed(seed)
    chunks: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, n_draws, batch_size):
            batch = min(batch_size, n_draws - start)
            x = torch.randn(batch, n_bins, frames, generator=generator)
            lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
            chunks.append(augment(x, lengths, generator=generator)[2])
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def flatten_augmentation_params(params: Mapping[str, torch.Tensor | np.ndarray]) -> pd.DataFrame:
    """MusicAugment params -> DataFrame with one row per draw per view.

    Columns: ``draw``, ``view`` (``q``/``k``), then for ``crop.<name>`` the column
    ``crop_<name>`` (a (B, 2) tensor contributes its column ``view``), and for
    ``<view>.<op>.<name>`` the column ``<op>_<name>``, or ``<op>_<name>_<j>`` for segment j
    of a (B, N) table. Booleans become 0/1 integers; ``shift_abs_steps`` = |shift_steps|.
    """
    import pandas as pd

    arrays = {
        k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in params.items()
    }
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"every param must have the same leading (draw) dimension, got {sorted(map(str, sizes))}")
    (n,) = sizes
    frames = []
    for view_index, view in enumerate(_VIEWS):
        columns: dict[str, np.ndarray] = {"draw": np.arange(n), "view": np.full(n, view)}
        for key, value in arrays.items():
            prefix, _, rest = key.partition(".")
            if value.dtype == bool:
                value = value.astype(np.int64)
            if prefix == "crop":
                name = f"crop_{rest}"
                if value.ndim == 2:
                    if value.shape[1] != len(_VIEWS):
                        raise ValueError(f"{key} must have one column per view, got shape {value.shape}")
                    value = value[:, view_index]
                columns[name] = value
            elif prefix in _VIEWS:
                if prefix != view:
                    continue
                name = rest.replace(".", "_")
                if value.ndim == 1:
                    columns[name] = value
                else:
                    for j in range(value.shape[1]):
                        columns[f"{name}_{j}"] = value[:, j]
            else:
                raise ValueError(f"unknown param {key!r}: expected crop.* or q.*/k.* keys from MusicAugment")
        frames.append(pd.DataFrame(columns))
    df = pd.concat(frames, ignore_index=True)
    if "shift_steps" in df.columns:
        df["shift_abs_steps"] = df["shift_steps"].abs()
    return df


def _rate_bounds(p: float, n: int, k: float) -> tuple[float, float]:
    sigma = math.sqrt(p * (1 - p) / n)
    return max(0.0, p - k * sigma), min(1.0, p + k * sigma)


def validate_augmentations(
    params: Mapping[str, torch.Tensor | np.ndarray],
    *,
    augment: MusicAugment,
    out_dir: str | os.PathLike,
    n_bins: int = 84,
    frames: int | None = None,
    tolerance_sigmas: float = 4.0,
    p: Mapping[str, float] | None = None,
    suite: str = "augmentations",
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate augmentation draws against ``augment``'s ranges (paper 2.3 defaults).

    Checks, per view: crop ratio in ``crop_ratio_range`` and crop length in [1, frames];
    frequency masks: ``n_drawn`` in ``freq_mask_n_range`` where applied, kept bands
    ``n <= n_drawn``, kept widths in ``freq_mask_width_range``, padding 0, total <= the cap
    (``freq_mask_max_total`` or floor(0.4 * n_bins)); time masks likewise with ratios in
    ``time_mask_ratio_range`` and total <= ``time_mask_max_total_ratio * out_frames``; warp
    ``|distance| <= W`` and centre in [W, out_frames - 1 - W] where applied; shift
    ``|steps|`` in ``shift_steps_range`` and axis in {0, 1} where applied; with mixing on, its
    ratio in [0, ``mix_max_ratio``]; nothing drawn where not applied. Each transform's application rate (both views pooled, n rows) must lie in
    ``p +- tolerance_sigmas * sqrt(p (1 - p) / n)``. When ``out_frames - 1 <= 2W`` no warp
    fits, MusicAugment never warps, and the warp rate check reports it.

    Args:
        params: ``MusicAugment.forward(...)[2]`` concatenated over draws, e.g. from
            :func:`sample_augmentation_params` (>= 1000 draws keeps the rate test tight).
        augment: the module that drew them; its hyper-parameters set every range.
        out_dir: where ``<suite>.json``, ``gx/`` and ``data_docs/`` go.
        n_bins: frequency bins of the input (sets the default frequency-mask cap).
        frames: input frames (crop lengths cannot exceed it); default ``augment.out_frames``.
        tolerance_sigmas: k in the rate bounds.
        p: application probabilities by transform (``freq_mask``, ``time_mask``,
            ``time_warp``, ``shift``, ``mix``); default: ``augment``'s.
        suite: suite name.
        raise_on_failure: raise :class:`ValidationError` when an expectation fails.
    """
    if not tolerance_sigmas > 0:
        raise ValueError(f"tolerance_sigmas must be > 0, got {tolerance_sigmas}")
    probs = {
        "freq_mask": augment.freq_mask_p,
        "time_mask": augment.time_mask_p,
        "time_warp": augment.time_warp_p,
        "shift": augment.shift_p,
        "mix": augment.mix_p,
    }
    if p is not None:
        unknown = set(p) - set(probs)
        if unknown:
            raise ValueError(f"unknown transforms in p: {sorted(unknown)}; known: {sorted(probs)}")
        probs.update({k: float(v) for k, v in p.items()})
    frames = augment.out_frames if frames is None else frames
    T = augment.out_frames
    gx, gxe, Column = _import_gx()
    df = flatten_augmentation_params(params)
    # Only the checked columns: GX evaluates each row condition over the whole frame, so
    # unchecked columns (segment starts and lengths) would only slow it down.
    unchecked_prefixes = ("freq_mask_starts_", "time_mask_starts_", "time_mask_lengths_")
    unchecked = [c for c in df.columns if c.startswith(unchecked_prefixes)]
    df = df.drop(columns=unchecked + [c for c in ("crop_applied", "crop_start") if c in df.columns])
    n = len(df)
    has = set(df.columns).__contains__
    ex: list[Any] = []

    def exist(*columns: str) -> None:
        ex.extend(gxe.ExpectColumnToExist(column=c, description=f"param column {c} exists") for c in columns)

    def between(column: str, lo: float, hi: float, description: str, where: Any = None) -> None:
        if has(column):
            ex.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=column, min_value=lo, max_value=hi, row_condition=where, description=description
                )
            )

    def rate(op: str) -> None:
        column = f"{op}_applied"
        if has(column):
            lo, hi = _rate_bounds(probs[op], n, tolerance_sigmas)
            ex.append(
                gxe.ExpectColumnMeanToBeBetween(
                    column=column,
                    min_value=lo,
                    max_value=hi,
                    description=f"{op} applied at rate p={probs[op]} +- {tolerance_sigmas} sigma over {n} views",
                )
            )

    def segments(op: str, value: str, n_max: int, lo: float, hi: float, unit: str) -> None:
        for j in range(n_max):
            column = f"{op}_{value}_{j}"
            exist(column)
            between(column, lo, hi, f"kept {op} {unit} {j} in [{lo}, {hi}]", Column(f"{op}_n") > j)
            between(column, 0, 0, f"{op} {unit} {j} is 0 beyond the kept segments", Column(f"{op}_n") <= j)

    def counts(op: str, n_range: tuple[int, int], min_kept: int) -> None:
        applied, not_applied = Column(f"{op}_applied") == 1, Column(f"{op}_applied") == 0
        between(f"{op}_applied", 0, 1, f"{op}_applied is 0 or 1")
        between(f"{op}_n_drawn", n_range[0], n_range[1], f"{op} draws {n_range[0]}..{n_range[1]} segments", applied)
        between(f"{op}_n", min_kept, n_range[1], f"{op} keeps {min_kept}..{n_range[1]} segments", applied)
        for c in (f"{op}_n_drawn", f"{op}_n", f"{op}_total"):
            between(c, 0, 0, f"{c} is 0 where {op} is not applied", not_applied)
        if has(f"{op}_n_drawn") and has(f"{op}_n"):
            ex.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=f"{op}_n_drawn",
                    column_B=f"{op}_n",
                    or_equal=True,
                    description=f"{op} keeps <= drawn segments",
                )
            )

    exist("crop_ratio", "crop_length")
    lo, hi = augment.crop_ratio_range
    between("crop_ratio", lo, hi, f"crop ratio in [{lo}, {hi}]")
    between("crop_length", 1, frames, f"crop length in [1, {frames}] frames")

    op, (w_lo, w_hi) = "freq_mask", augment.freq_mask_width_range
    cap = math.floor(0.4 * n_bins) if augment.freq_mask_max_total is None else augment.freq_mask_max_total
    exist(f"{op}_applied", f"{op}_n_drawn", f"{op}_n", f"{op}_total")
    rate(op)
    counts(op, augment.freq_mask_n_range, 1 if w_hi <= cap else 0)
    segments(op, "widths", augment.freq_mask_n_range[1], w_lo, w_hi, "width")
    between(f"{op}_total", 0, cap, f"{op} total width <= {cap} bins")

    op, (r_lo, r_hi) = "time_mask", augment.time_mask_ratio_range
    t_cap = augment.time_mask_max_total_ratio * T
    exist(f"{op}_applied", f"{op}_n_drawn", f"{op}_n", f"{op}_total")
    rate(op)
    counts(op, augment.time_mask_n_range, 1 if round(T * r_hi) <= t_cap else 0)
    segments(op, "ratios", augment.time_mask_n_range[1], r_lo, r_hi, "ratio")
    between(f"{op}_total", 0, t_cap, f"{op} total length <= {augment.time_mask_max_total_ratio} * T = {t_cap} frames")

    op, W = "time_warp", augment.time_warp_W
    exist(f"{op}_applied", f"{op}_distance", f"{op}_centre")
    rate(op)
    between(f"{op}_applied", 0, 1, f"{op}_applied is 0 or 1")
    between(f"{op}_distance", -W, W, f"|warp distance| <= W = {W}")
    if T - 1 > 2 * W:  # otherwise no warp fits and the rate check reports that it never applies
        centre = f"warp centre in [W, T-1-W] = [{W}, {T - 1 - W}]"
        between(f"{op}_centre", W, T - 1 - W, centre, Column(f"{op}_applied") == 1)
    for c in (f"{op}_distance", f"{op}_centre"):
        between(c, 0, 0, f"{c} is 0 where {op} is not applied", Column(f"{op}_applied") == 0)

    op, (s_lo, s_hi) = "shift", augment.shift_steps_range
    exist(f"{op}_applied", f"{op}_axis", f"{op}_steps")
    rate(op)
    between(f"{op}_applied", 0, 1, f"{op}_applied is 0 or 1")
    between(f"{op}_abs_steps", s_lo, s_hi, f"|shift steps| in [{s_lo}, {s_hi}]", Column(f"{op}_applied") == 1)
    between(f"{op}_axis", 0, 1, "shift axis is 0 (pitch) or 1 (time)", Column(f"{op}_applied") == 1)
    between(f"{op}_steps", 0, 0, "shift steps are 0 where not applied", Column(f"{op}_applied") == 0)
    between(f"{op}_axis", -1, -1, "shift axis is -1 where not applied", Column(f"{op}_applied") == 0)

    if augment.mix_p > 0:  # MusicAugment draws nothing for mixing when it is off
        op, r_max = "mix", augment.mix_max_ratio
        exist(f"{op}_applied", f"{op}_ratio")
        rate(op)
        between(f"{op}_applied", 0, 1, f"{op}_applied is 0 or 1")
        between(f"{op}_ratio", 0, r_max, f"mix ratio in [0, {r_max}]")
        between(f"{op}_ratio", 0, 0, "mix ratio is 0 where not applied", Column(f"{op}_applied") == 0)

    meta = {
        "augment": augment.extra_repr(),
        "n_bins": n_bins,
        "frames": frames,
        "p": probs,
        "tolerance_sigmas": tolerance_sigmas,
        "rows": n,
    }
    return _run_suite(gx, df, suite, ex, out_dir, meta, id_columns=["draw", "view"], raise_on_failure=raise_on_failure)


# --------------------------------------------------------------------------- GX plumbing


def _import_gx():
    """Import GX lazily: it is slow to import and only the validation stage needs it."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    return gx, gxe, Column


def _context(gx, out: Path):
    """A fresh ephemeral context: no analytics, no progress bars, suites/results/docs under ``out``."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(out / "gx" / "validations"),
        },
    }
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={_SITE: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _run_suite(
    gx,
    df: pd.DataFrame,
    suite_name: str,
    expectations: Sequence[Any],
    out_dir: str | os.PathLike,
    meta: dict,
    *,
    id_columns: list[str],
    raise_on_failure: bool,
) -> ValidationReport:
    from great_expectations.checkpoint import UpdateDataDocsAction

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    context = _context(gx, out)
    asset = context.data_sources.add_pandas("s3t").add_dataframe_asset(suite_name)
    batch = asset.add_batch_definition_whole_dataframe("all_rows")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=list(expectations), meta=meta))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if id_columns:
        result_format["unexpected_index_column_names"] = id_columns
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[_SITE])],
            result_format=result_format,
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": df})
    (gx_result,) = run.run_results.values()

    order = {e.id: i for i, e in enumerate(suite.expectations)}
    ordered = sorted(gx_result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    rows = [_summarise(r) for r in ordered]
    report = ValidationReport(
        suite=suite_name,
        success=bool(gx_result.success),
        results=rows,
        json_path=out / f"{suite_name}.json",
        html_path=out / "data_docs" / "index.html",
    )
    summary = {
        "suite": suite_name,
        "success": report.success,
        "failed": [r["message"] for r in report.failures],
        "meta": meta,
        "results": rows,
        "data_docs": str(report.html_path),
        "gx_result": gx_result.to_json_dict(),
    }
    report.json_path.write_text(json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    if raise_on_failure and not report.success:
        raise ValidationError(report)
    return report


def _summarise(result) -> dict:
    """One GX expectation result -> a JSON-able dict with a one-line readable ``message``."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format") and v is not None}
    if "row_condition" in kwargs:
        kwargs["row_condition"] = _condition_text(kwargs["row_condition"])
    res = result.result or {}
    exception = None
    info = result.exception_info or {}
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    if info.get("raised_exception"):
        messages.append(info.get("exception_message"))
    if messages:
        exception = "; ".join(sorted({m for m in messages if m}))
    examples = res.get("partial_unexpected_index_list") or res.get("partial_unexpected_list") or []
    row = {
        "expectation": config.type,
        "description": config.description,
        "column": kwargs.get("column"),
        "kwargs": kwargs,
        "success": bool(result.success),
        "observed": res.get("observed_value"),
        "element_count": res.get("element_count"),
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_examples": list(examples)[:5],
        "exception": exception,
    }
    row["message"] = _message(row)
    return _jsonable(row)


def _message(row: dict) -> str:
    args = ", ".join(f"{k}={_short(v)}" for k, v in row["kwargs"].items())
    head = f"{row['expectation']}({args})"
    if row["description"]:
        head = f"{row['description']}: {head}"
    if row["success"]:
        return f"{head} passed"
    if row["exception"]:
        return f"{head} could not run: {row['exception']}"
    if row["unexpected_count"] is not None:
        total = row["element_count"]
        examples = _short(row["unexpected_examples"][:3], 240)
        return f"{head} failed: {row['unexpected_count']} of {total} rows unexpected, e.g. {examples}"
    if row["observed"] is not None:
        return f"{head} failed: observed {_short(row['observed'])}"
    return f"{head} failed"


def _condition_text(condition: Any) -> str:
    """A GX row condition (object or its serialised dict) as ``column op value`` text."""
    if not isinstance(condition, dict):
        return repr(condition)
    kind = condition.get("type")
    if kind == "comparison":
        return f"{condition['column']['name']} {condition['operator']} {condition['parameter']!r}"
    if kind == "nullity":
        return f"{condition['column']['name']} IS {'NULL' if condition['is_null'] else 'NOT NULL'}"
    if kind in ("and", "or"):
        return "(" + f" {kind.upper()} ".join(_condition_text(c) for c in condition["conditions"]) + ")"
    return repr(condition)


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits (a float32 0.95 reads 0.95, not 0.949999988)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _short(value: Any, limit: int = 120) -> str:
    text = repr(_rounded(_jsonable(value)))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays, paths, sets and tuples -> plain JSON types; NaN/inf -> strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_jsonable(v) for v in (sorted(value, key=repr) if isinstance(value, set) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
