"""Embedding tables in formats other tools read: NumPy + CSV, or Parquet.

A table is one row per file (or per window of a file): the file's path, the window's start
and end in seconds, and the embedding. The format follows the suffix of the output path:

* ``OUT.npy``: the (N, D) float32 matrix (``numpy.load``), beside ``OUT.csv`` with the
  columns ``path,start_s,end_s`` (row i of the CSV is row i of the matrix).
* ``OUT.parquet``: columns ``path`` (string), ``start_s``, ``end_s`` (float64) and
  ``embedding`` (fixed-size list of D float32), readable by pandas, polars, DuckDB, Spark.

Both formats get ``OUT.json`` (how the table was made: checkpoint and its sha256, window,
hop, segments, dimension, counts) and ``OUT.rejected.csv`` (``path,reason`` of every file
that could not be embedded). Every file is written to a temporary name and renamed, so an
interrupted write never leaves a half table under the final name.

The in-progress state of a large folder lives in ``OUT.parts/`` (one ``.npz`` per batch
of files) until the table is complete; it is what makes an interrupted run resumable.
Rejected files are not part of that state: a later run tries them again (they may have
been replaced), which costs little since a broken file fails at decoding.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FORMATS = (".npy", ".parquet")
INDEX_COLUMNS = ("path", "start_s", "end_s")


class ExportError(ValueError):
    """An output path or an existing table that cannot be used."""


@dataclass
class EmbeddingTable:
    """Rows of embeddings. embeddings: (N, D) float32; paths, start_s, end_s: N each (seconds)."""

    embeddings: np.ndarray
    paths: list[str]
    start_s: list[float]
    end_s: list[float]
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {self.embeddings.shape}")
        n = self.embeddings.shape[0]
        if not len(self.paths) == len(self.start_s) == len(self.end_s) == n:
            raise ValueError(f"{n} embeddings but {len(self.paths)} paths, {len(self.start_s)} starts, {len(self.end_s)} ends")

    @classmethod
    def concat(cls, tables: Sequence["EmbeddingTable"], dim: int, settings: dict[str, Any]) -> "EmbeddingTable":
        """One table of the rows of ``tables`` in order; (0, dim) when there are none."""
        if not tables:
            return cls(np.zeros((0, dim), np.float32), [], [], [], settings)
        return cls(
            np.concatenate([t.embeddings for t in tables]).astype(np.float32, copy=False),
            [p for t in tables for p in t.paths], [s for t in tables for s in t.start_s],
            [e for t in tables for e in t.end_s], settings,
        )

    def select(self, keep: np.ndarray) -> "EmbeddingTable":
        """The rows where the boolean mask ``keep`` (N,) is true."""
        idx = np.flatnonzero(keep)
        return EmbeddingTable(self.embeddings[idx], [self.paths[i] for i in idx], [self.start_s[i] for i in idx],
                              [self.end_s[i] for i in idx], self.settings)


def output_format(out: str | os.PathLike) -> str:
    """The table format of ``out`` from its suffix: ".npy" or ".parquet"."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"--out {out} must end in .npy (NumPy + CSV index) or .parquet")
    return suffix


def companion(out: str | os.PathLike, what: str) -> Path:
    """The file beside ``out`` holding ``what``: "index" (music.csv for music.npy), "settings"
    (music.npy.json), "rejected" (music.npy.rejected.csv) or "parts" (the music.npy.parts/
    folder). All but the index keep the full name of ``out``, so music.npy and music.parquet
    in one folder never share a companion."""
    out = Path(out)
    if what == "index":
        return out.with_suffix(".csv")
    names = {"settings": ".json", "rejected": ".rejected.csv", "parts": ".parts"}
    return out.with_name(out.name + names[what])


def _replace_into(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)

    _replace_into(path, write)


def write_table(out: str | os.PathLike, table: EmbeddingTable, rejected: Sequence[tuple[str, str]]) -> list[Path]:
    """Write ``table`` in the format of ``out``'s suffix, with its settings and rejected files; return the paths written."""
    fmt = output_format(out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out]
    if fmt == ".npy":
        def save(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.save(fh, table.embeddings.astype(np.float32, copy=False))

        _replace_into(out, save)
        index = companion(out, "index")
        _write_csv(index, INDEX_COLUMNS, ([p, f"{s:.3f}", f"{e:.3f}"] for p, s, e in zip(table.paths, table.start_s, table.end_s)))
        written.append(index)
    else:
        pa, pq = _pyarrow()
        dim = table.embeddings.shape[1]
        values = pa.array(table.embeddings.reshape(-1), type=pa.float32())
        arrow = pa.table({
            "path": pa.array(table.paths, type=pa.string()),
            "start_s": pa.array(np.round(table.start_s, 3), type=pa.float64()),
            "end_s": pa.array(np.round(table.end_s, 3), type=pa.float64()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, dim),
        }).replace_schema_metadata({"s3t": json.dumps(table.settings)})
        _replace_into(out, lambda tmp: pq.write_table(arrow, str(tmp)))
    settings = companion(out, "settings")
    _replace_into(settings, lambda tmp: tmp.write_text(json.dumps(table.settings, indent=2) + "\n", encoding="utf-8"))
    rejected_csv = companion(out, "rejected")
    _write_csv(rejected_csv, ("path", "reason"), rejected)
    return [*written, settings, rejected_csv]


def read_table(out: str | os.PathLike) -> EmbeddingTable:
    """Read back a table written by :func:`write_table` (settings from ``OUT.json``)."""
    fmt = output_format(out)
    out = Path(out)
    settings_path = companion(out, "settings")
    if not settings_path.is_file():
        raise ExportError(f"{out} has no {settings_path.name} beside it; it was not written by `s3t embed`")
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    if fmt == ".npy":
        embeddings = np.load(out)
        with companion(out, "index").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return EmbeddingTable(embeddings, [r["path"] for r in rows], [float(r["start_s"]) for r in rows],
                              [float(r["end_s"]) for r in rows], settings)
    _, pq = _pyarrow()
    arrow = pq.read_table(out)
    dim = arrow.schema.field("embedding").type.list_size
    flat = arrow.column("embedding").combine_chunks().flatten().to_numpy()
    return EmbeddingTable(flat.reshape(-1, dim).astype(np.float32), arrow.column("path").to_pylist(),
                          arrow.column("start_s").to_pylist(), arrow.column("end_s").to_pylist(), settings)


def write_part(path: Path, table: EmbeddingTable) -> None:
    """One batch of finished files of a run in progress (``.npz``), written atomically."""
    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, embeddings=table.embeddings, paths=np.array(table.paths, dtype=str),
                     start_s=np.array(table.start_s, np.float64), end_s=np.array(table.end_s, np.float64))

    _replace_into(path, save)


def read_part(path: Path, settings: dict[str, Any]) -> EmbeddingTable:
    """The rows of a batch written by :func:`write_part`."""
    with np.load(path) as data:
        return EmbeddingTable(data["embeddings"], data["paths"].tolist(), data["start_s"].tolist(),
                              data["end_s"].tolist(), settings)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # an optional dependency of the pipeline extra, not of the core library
        raise ExportError("writing Parquet needs pyarrow: pip install pyarrow (or use an --out ending in .npy)") from err
    return pa, pq
