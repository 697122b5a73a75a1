"""Labeled-audio manifests: the CSV contract between datasets, the CLI and the pipeline.

A manifest is a CSV file (UTF-8; a byte-order mark before the header, as spreadsheet
programs write, is accepted) whose first line is a header naming its columns. Columns are
found by name, in any order; three are required:

- ``path``: an audio file, relative to the manifest's folder or absolute;
- ``label``: one label (single-label tasks, e.g. genre) or several joined with ``|``
  (multi-label tasks, e.g. MagnaTagATune tags); may be empty for an unlabeled row of a
  multi-label manifest (a clip with none of the tags);
- ``split``: ``train``, ``valid`` or ``test``.

Any other column (``track``, ``artist``, ``album``, ``start_s``, ...) is accepted and ignored,
so a manifest can carry its provenance. One of them may be named as the *group column*
(``read_manifest(path, group_column="track")``): clips cut from the same track, or tracks
of the same artist, then form a group, every row needs a non-empty group, and no group may
appear in two splits. A clip of a test track whose sibling clip is in train makes the test
score measure memorisation rather than generalisation, and nothing in the clips themselves
reveals it, so the loader refuses such a manifest.

Rows are checked when read: a bad row raises :class:`ManifestError` naming the line, so a
broken manifest is reported rather than silently trimmed. What :func:`read_manifest` refuses
(one line each, naming the line or the clip):

- a missing required column, a repeated required column, a row with another number of
  fields than the header, an unknown split, a padded or empty label inside ``a|b``;
- the same clip (the same file, after resolving links) listed twice: in two splits it would
  be both trained on and tested on, a label leak no score reveals, so the message names the
  clip and both splits; twice in one split it would be embedded and counted twice;
- an empty label in a single-label manifest (no row has several labels): it would silently
  turn the task into tagging (ROC-AUC instead of top-1 accuracy). Empty labels are accepted
  only where some row has several labels, i.e. in a tagging manifest;
- a manifest where no row has a label, and, with a group column, a group in two splits.

Nothing is skipped: a manifest is accepted whole or refused. Rows whose audio cannot be
read are the decoder's business (:mod:`s3t.audio`): the featurizer skips them and lists them
with their reasons.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

SPLITS = ("train", "valid", "test")
LABEL_SEPARATOR = "|"
HEADER = ("path", "label", "split")
_SHOWN_GROUPS = 5  # leaking groups named in the error; the rest are counted


class ManifestError(ValueError):
    """A manifest file that does not follow the CSV contract of this module."""


@dataclass(frozen=True)
class ManifestRow:
    """One labeled clip. ``path`` is absolute once read through :func:`read_manifest`.

    ``group`` is the row's value in the group column when the manifest was read with one
    (e.g. its track or artist), ``""`` otherwise.
    """

    path: str
    labels: tuple[str, ...]
    split: str
    group: str = ""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ManifestError(f"split {self.split!r} of {self.path} must be one of {', '.join(SPLITS)}")
        if not self.path:
            raise ManifestError("a manifest row has an empty path")
        for label in self.labels:
            if not label or LABEL_SEPARATOR in label or label != label.strip():
                raise ManifestError(f"label {label!r} of {self.path} is empty, padded or contains {LABEL_SEPARATOR!r}")
        # Read values are stripped, so a padded group could never be read back as written.
        if self.group != self.group.strip():
            raise ManifestError(f"group {self.group!r} of {self.path} has leading or trailing spaces; strip it")


def read_manifest(
    path: str | os.PathLike, *, group_column: str | None = None, tagging: bool | None = None
) -> list[ManifestRow]:
    """Read and validate a manifest; relative paths are resolved against its folder.

    Args:
        path: the CSV file.
        group_column: a header column whose value groups rows (e.g. ``track``); every row
            then needs a non-empty value, no group may span two splits, and each row's
            ``group`` holds the value. None: no grouping, ``group`` is ``""``.
        tagging: True: a tagging (multi-label) manifest; False: single-label, so a label holding
            ``|`` is refused rather than silently turning the task into tagging (the command line
            passes False unless ``--tagging`` is given); None: inferred (any row with several
            labels makes it tagging), for manifests whose task the caller knows.

    Returns:
        The rows in file order (blank lines skipped).

    Raises:
        ManifestError: the file is missing, a required or the group column is absent, a row
            has another number of fields than the header or a bad value (the message names
            the line), a clip is listed twice, a label is empty in a single-label manifest,
            no row has a label, or a group is in two splits (see the module docstring).
    """
    if group_column is not None and not group_column.strip():
        raise ManifestError(f"group_column must name a manifest column, got {group_column!r}")
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    root = path.resolve().parent
    rows: list[ManifestRow] = []
    lines: list[int] = []  # the line of each row, for messages
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ManifestError(
                f"{path} is empty; its first line must be a header naming the columns {','.join(HEADER)}"
            )
        names = [h.strip() for h in header]
        columns = _column_positions(path, names, group_column)
        for record in reader:
            if not record:
                continue
            # line_num counts physical lines, so it stays right after blank lines and quoted newlines.
            line_no = reader.line_num
            if len(record) != len(names):
                raise ManifestError(
                    f"{path}:{line_no}: expected {len(names)} fields like the header ({','.join(names)}), "
                    f"got {len(record)}; quote fields that contain commas"
                )
            rel, label, split = (record[columns[c]].strip() for c in HEADER)
            group = record[columns[group_column]].strip() if group_column is not None else ""
            if group_column is not None and not group:
                raise ManifestError(
                    f"{path}:{line_no}: empty {group_column!r} (the group column); give every row a group"
                )
            labels = tuple(label.split(LABEL_SEPARATOR)) if label else ()
            try:
                row = ManifestRow(path=_absolute(root / rel) if rel else "", labels=labels, split=split, group=group)
            except ManifestError as err:
                raise ManifestError(f"{path}:{line_no}: {err}") from None
            rows.append(row)
            lines.append(line_no)
    if not rows:
        raise ManifestError(f"{path} has a header but no rows")
    _check_each_clip_once(path, rows, lines)
    if tagging is False:
        several = [i for i, row in enumerate(rows) if len(row.labels) > 1]
        if several:
            first = rows[several[0]]
            raise ManifestError(
                f"{path}:{lines[several[0]]}: label {LABEL_SEPARATOR.join(first.labels)!r} holds {LABEL_SEPARATOR!r}, "
                f"which joins the tags of a tagging manifest ({len(several)} such row(s)); pass --tagging if this is "
                f"a tagging task, or remove {LABEL_SEPARATOR!r} from the label"
            )
    _check_labels(path, rows, lines)
    if group_column is not None:
        leaks = _groups_in_several_splits(rows)
        if leaks:
            raise ManifestError(f"{path}: {_leak_message(leaks, group_column)}")
    return rows


def read_recordings(path: str | os.PathLike, *, column: str = "track") -> dict[str, str]:
    """Which recording each audio file of a CSV was cut from: {absolute path: value of ``column``}.

    Any CSV with a ``path`` column (relative to its folder, or absolute) and ``column`` will do: a
    manifest, or the soundtracks' ``unlabeled.csv`` of pre-training pieces. Used to draw positive
    pairs from one recording (:class:`s3t.train.PretrainConfig` ``positives``).

    Raises:
        ManifestError: the file is missing or empty, lacks either column, a row has another number
            of fields than the header or an empty value, or a file is listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path} does not exist")
    root = path.resolve().parent
    out: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        names = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("path", column) if c not in names]
        if missing:
            raise ManifestError(f"{path} has no {' or '.join(repr(c) for c in missing)} column "
                                f"(its header: {','.join(names) or 'none'})")
        at_path, at_group = names.index("path"), names.index(column)
        for record in reader:
            if not record:
                continue
            if len(record) != len(names):
                raise ManifestError(f"{path}:{reader.line_num}: expected {len(names)} fields like the header, "
                                    f"got {len(record)}; quote fields that contain commas")
            rel, group = record[at_path].strip(), record[at_group].strip()
            if not rel or not group:
                raise ManifestError(f"{path}:{reader.line_num}: empty path or {column!r}; give every row both")
            file = _absolute(root / rel)
            if file in out:
                raise ManifestError(f"{path}:{reader.line_num}: {rel} is listed twice")
            out[file] = group
    return out


RECORDING_TABLES = ("manifest.csv", "unlabeled.csv")


def dataset_recordings(root: str | os.PathLike, *, column: str = "track") -> dict[str, str]:
    """:func:`read_recordings` of a dataset folder's tables (:data:`RECORDING_TABLES`) that have
    ``column``; {} when none has (every file is then its own recording)."""
    out: dict[str, str] = {}
    for name in RECORDING_TABLES:
        table = Path(root) / name
        if not table.is_file():
            continue
        with table.open(newline="", encoding="utf-8-sig") as fh:
            header = [h.strip() for h in next(csv.reader(fh), [])]
        if column in header:
            out.update(read_recordings(table, column=column))
    return out


def _absolute(path: Path) -> str:
    """``path`` with links resolved, so two names of one file compare equal; a path whose links
    cannot be resolved (a symlink loop) is kept absolute as written, for the decoder to report."""
    try:
        return str(path.resolve())
    except (RuntimeError, OSError):
        # Python < 3.13 raises RuntimeError on a symlink loop.
        return os.path.abspath(path)


def _check_each_clip_once(path: Path, rows: Sequence[ManifestRow], lines: Sequence[int]) -> None:
    """Refuse a clip listed twice: in two splits (a label leak) or twice in one split."""
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        j = first.setdefault(row.path, i)
        if j == i:
            continue
        earlier = rows[j]
        if earlier.split != row.split:
            raise ManifestError(
                f"{path}: clip {row.path} is in {earlier.split} (line {lines[j]}) and in {row.split} (line {lines[i]}); "
                f"a clip in two splits leaks its label into the score: keep it in one split"
            )
        raise ManifestError(
            f"{path}: clip {row.path} is listed twice in {row.split} (lines {lines[j]} and {lines[i]}); "
            f"it would be embedded and counted twice: remove one row"
        )


def _check_labels(path: Path, rows: Sequence[ManifestRow], lines: Sequence[int]) -> None:
    """Refuse a manifest with no label at all, or an empty label in a single-label manifest."""
    if not any(row.labels for row in rows):
        raise ManifestError(f"{path}: no row has a label; fill the label column")
    if any(len(row.labels) > 1 for row in rows):
        return  # tagging: an empty label is a clip with none of the tags
    empty = [i for i, row in enumerate(rows) if not row.labels]
    if empty:
        more = f" (and {len(empty) - 1} more rows)" if len(empty) > 1 else ""
        raise ManifestError(
            f"{path}:{lines[empty[0]]}: empty label{more} in a single-label manifest (every other row has one "
            f"label); give the row its label or remove it (an empty label is allowed only in a tagging manifest, "
            f"where rows have several labels joined with {LABEL_SEPARATOR!r})"
        )


def _column_positions(path: Path, names: list[str], group_column: str | None) -> dict[str, int]:
    """Header name -> field index of the required columns and the group column."""
    missing = [c for c in HEADER if c not in names]
    if missing:
        raise ManifestError(
            f"{path}: the header lacks the column(s) {', '.join(missing)} (found: {', '.join(names)}); "
            f"the first line must name the columns {', '.join(HEADER)}, in any order"
        )
    if group_column is not None and group_column not in names:
        raise ManifestError(
            f"{path}: group column {group_column!r} is not in the header; its columns are {', '.join(names)}"
        )
    used = set(HEADER) | ({group_column} if group_column is not None else set())
    repeated = sorted(c for c in used if names.count(c) > 1)
    if repeated:
        # Which of two equally named columns holds the value is a guess, so refuse.
        raise ManifestError(f"{path}: the header names column(s) {', '.join(repeated)} more than once; keep one")
    return {c: names.index(c) for c in used}


def _groups_in_several_splits(rows: Sequence[ManifestRow]) -> list[tuple[str, list[str]]]:
    """(group, its splits in SPLITS order) for each group in two or more splits, in first-seen order."""
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        splits_of.setdefault(row.group, set()).add(row.split)
    return [(g, [s for s in SPLITS if s in splits]) for g, splits in splits_of.items() if len(splits) > 1]


def _leak_message(leaks: list[tuple[str, list[str]]], group_column: str) -> str:
    """One line naming up to _SHOWN_GROUPS leaking groups and what to change."""
    shown = [
        f"group {group!r} is in {', '.join(splits[:-1])} and {splits[-1]}" for group, splits in leaks[:_SHOWN_GROUPS]
    ]
    more = f" (and {len(leaks) - _SHOWN_GROUPS} more)" if len(leaks) > _SHOWN_GROUPS else ""
    return (
        f"{len(leaks)} group(s) of column {group_column!r} span several splits: {'; '.join(shown)}{more}; "
        f"put each group in one split"
    )


def write_manifest(
    rows: Iterable[ManifestRow],
    path: str | os.PathLike,
    *,
    group_column: str | None = None,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write rows atomically; paths inside the manifest's folder are stored relative to it.

    Args:
        rows: the rows.
        path: the CSV file to write (replaced).
        group_column: when given, each row's ``group`` is written under this column after
            ``split``; the rows must then satisfy what :func:`read_manifest` checks for it
            (non-empty groups, no group in two splits). None: groups are not written.
        extra: further columns, name -> one value per row, written after the group column
            (e.g. ``{"start_s": [...]}``); read_manifest ignores them.

    Raises:
        ValueError: a column name is empty or repeats another, an ``extra`` column has
            another length than ``rows``.
        ManifestError: with ``group_column``, a row without a group or a group in two splits.
    """
    rows = list(rows)
    extra = dict(extra or {})
    header = list(HEADER) + ([group_column] if group_column is not None else []) + list(extra)
    names = [str(c).strip() for c in header]
    if any(not c for c in names) or len(set(names)) != len(names) or names != header:
        raise ValueError(
            f"manifest column names must be non-empty, unpadded and distinct from each other and from "
            f"{', '.join(HEADER)}; got {header}"
        )
    for name, values in extra.items():
        if len(values) != len(rows):
            raise ValueError(f"extra column {name!r} has {len(values)} values for {len(rows)} rows; give one per row")
    if group_column is not None:
        unnamed = [row.path for row in rows if not row.group]
        if unnamed:
            raise ManifestError(
                f"{len(unnamed)} row(s) have no group for column {group_column!r}, e.g. {unnamed[0]}; "
                f"give every row a group or write without group_column"
            )
        leaks = _groups_in_several_splits(rows)
        if leaks:
            raise ManifestError(_leak_message(leaks, group_column))
    path = Path(path)
    root = path.resolve().parent
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i, row in enumerate(rows):
            file_path = Path(row.path)
            try:
                stored = Path(_absolute(file_path)).relative_to(root).as_posix() if file_path.is_absolute() else row.path
            except ValueError:
                stored = str(file_path)
            record = [stored, LABEL_SEPARATOR.join(row.labels), row.split]
            if group_column is not None:
                record.append(row.group)
            record += [values[i] for values in extra.values()]
            writer.writerow(record)
    os.replace(tmp, path)


def label_vocabulary(rows: Sequence[ManifestRow]) -> list[str]:
    """Sorted list of every label that occurs in the rows."""
    return sorted({label for row in rows for label in row.labels})


def is_multilabel(rows: Sequence[ManifestRow]) -> bool:
    """True when any row has other than exactly one label (tagging), False for single-label (genre)."""
    return any(len(row.labels) != 1 for row in rows)
