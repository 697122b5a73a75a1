"""Labeled-audio manifests: the CSV contract between datasets, the CLI and the pipeline.

A manifest is a CSV file with the header ``path,label,split``:

- ``path``: an audio file, relative to the manifest's folder or absolute;
- ``label``: one label (single-label tasks, e.g. genre) or several joined with ``|``
  (multi-label tasks, e.g. MagnaTagATune tags); may be empty for an unlabeled row of a
  multi-label manifest (a clip with none of the tags);
- ``split``: ``train``, ``valid`` or ``test``.

Rows are checked when read: a bad row raises :class:`ManifestError` naming the line, so a
broken manifest is reported rather than silently trimmed.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

SPLITS = ("train", "valid", "test")
LABEL_SEPARATOR = "|"
HEADER = ("path", "label", "split")


class ManifestError(ValueError):
    """A manifest file that does not follow the ``path,label,split`` contract."""


@dataclass(frozen=True)
class ManifestRow:
    """One labeled clip. ``path`` is absolute once read through :func:`read_manifest`."""

    path: str
    labels: tuple[str, ...]
    split: str

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ManifestError(f"split {self.split!r} of {self.path} must be one of {', '.join(SPLITS)}")
        if not self.path:
            raise ManifestError("a manifest row has an empty path")
        for label in self.labels:
            if not label or LABEL_SEPARATOR in label or label != label.strip():
                raise ManifestError(f"label {label!r} of {self.path} is empty, padded or contains {LABEL_SEPARATOR!r}")


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read and validate a manifest; relative paths are resolved against its folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    root = path.resolve().parent
    rows: list[ManifestRow] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise ManifestError(f"{path}: the first line must be the header {','.join(HEADER)}, got {header}")
        for line_no, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != 3:
                raise ManifestError(f"{path}:{line_no}: expected 3 columns (path,label,split), got {len(record)}")
            rel, label, split = (field.strip() for field in record)
            labels = tuple(label.split(LABEL_SEPARATOR)) if label else ()
            try:
                row = ManifestRow(path=str((root / rel).resolve()) if rel else "", labels=labels, split=split)
            except ManifestError as err:
                raise ManifestError(f"{path}:{line_no}: {err}") from None
            rows.append(row)
    if not rows:
        raise ManifestError(f"{path} has a header but no rows")
    return rows


def write_manifest(rows: Iterable[ManifestRow], path: str | os.PathLike) -> None:
    """Write rows atomically; paths inside the manifest's folder are stored relative to it."""
    path = Path(path)
    root = path.resolve().parent
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for row in rows:
            file_path = Path(row.path)
            try:
                stored = file_path.resolve().relative_to(root).as_posix() if file_path.is_absolute() else row.path
            except ValueError:
                stored = str(file_path)
            writer.writerow([stored, LABEL_SEPARATOR.join(row.labels), row.split])
    os.replace(tmp, path)


def label_vocabulary(rows: Sequence[ManifestRow]) -> list[str]:
    """Sorted list of every label that occurs in the rows."""
    return sorted({label for row in rows for label in row.labels})


def is_multilabel(rows: Sequence[ManifestRow]) -> bool:
    """True when any row has other than exactly one label (tagging), False for single-label (genre)."""
    return any(len(row.labels) != 1 for row in rows)
