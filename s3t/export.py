"""Embedding tables in formats other tools read: NumPy + CSV, or Parquet.

A table is one row per file (or per window of a file): the file's path, the window's start
and end in seconds, and the embedding. The format follows the suffix of the output path:

* ``OUT.npy``: the (N, D) float32 matrix (``numpy.load``), beside ``OUT.csv`` with the
  columns ``path,start_s,end_s`` (row i of the CSV is row i of the matrix).
* ``OUT.parquet``: columns ``path`` (string), ``start_s``, ``end_s`` (float64) and
  ``embedding`` (fixed-size list of D float32), readable by pandas, polars, DuckDB, Spark.

Both formats get ``OUT.json``, the descriptor (how the table was made: checkpoint and its
sha256, window, hop, segments, dimension, counts; the size and modification time of every
source file, so a file replaced under the same name is embedded again; and the sha256 of the
table's files), and ``OUT.rejected.csv`` (``path,reason`` of every file that could not be
embedded).

A table is whole or absent: every file is first written to a temporary name, then all are
renamed into place, the descriptor last; :func:`read_table` checks the table's files against
the digests in the descriptor, so a table caught half-published (a crash between two
renames, a full disk) or edited is refused with the files to delete, never resumed from.
:func:`table_files` lists the paths a table occupies, and :func:`check_own_files` refuses,
before any work, a path among them that holds something else (a user's ``songs.csv`` beside
``songs.npy``).

Text in the CSV files is spreadsheet-safe (:func:`csv_cell`): a cell starting with ``=``,
``+``, ``-``, ``@``, a tab, a carriage return or ``'`` gets a leading ``'``, so a spreadsheet
shows a file named ``=1+1.wav`` instead of computing it; the Parquet and JSON outputs keep
the text as it is. File names that are not valid UTF-8 (``caf\\xe9.wav`` written by another
system) are written with the undecodable bytes as ``\\xNN`` (:func:`path_text`) in every
output, CSV, Parquet and JSON alike.

The in-progress state of a large folder lives in ``OUT.parts/`` (one ``.npz`` per batch
of files) until the table is complete; it is what makes an interrupted run resumable.
Rejected files are not part of that state: a later run tries them again (they may have
been replaced), which costs little since a broken file fails at decoding.
"""

from __future__ import annotations

import csv
import hashlib
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


def path_text(path: str) -> str:
    """``path`` as UTF-8 text: bytes a file name holds that are not UTF-8 (they reach Python as
    surrogate escapes) become ``\\xNN``, so every output can hold the name."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(text: str) -> str:
    """A text cell safe to open in a spreadsheet: ``'`` before a leading ``= + - @``, tab, CR or
    ``'`` (OWASP's advice against CSV injection); :func:`from_csv_cell` undoes it."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def from_csv_cell(text: str) -> str:
    """The text :func:`csv_cell` was given."""
    return text[1:] if text.startswith("'") else text


def _tmp_name(path: Path) -> Path:
    # The process id keeps two writers from sharing a temporary file (the lock of `s3t embed` keeps
    # them from sharing a table).
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _replace_into(path: Path, write) -> None:
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON at ``path``, written to a temporary name and renamed (whole or absent)."""
    _replace_into(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"))


def _csv_writer(header: Sequence[str], rows):
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)

    return write


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_files(out: str | os.PathLike) -> dict[str, Path]:
    """The files a table at ``out`` occupies: "table", "index" (.npy only), "rejected", "settings"."""
    out = Path(out)
    files = {"table": out, "index": companion(out, "index"), "rejected": companion(out, "rejected"),
             "settings": companion(out, "settings")}
    if output_format(out) != ".npy":
        del files["index"]
    return files


_HEADERS = {"index": ",".join(INDEX_COLUMNS), "rejected": "path,reason"}
_MAGIC = {".npy": b"\x93NUMPY", ".parquet": b"PAR1"}


def check_own_files(out: str | os.PathLike) -> None:
    """Refuse, before any work, a path the table at ``out`` would write that exists and is not a
    file of an ``s3t embed`` table of the same kind: each is recognised by its header (the
    CSVs), magic bytes (the table) or keys (the descriptor), and none but the descriptor's
    own may exist without the descriptor.

    Raises:
        ExportError: naming the file and what to do.
    """
    files = table_files(out)
    settings = files["settings"]

    def refuse(path: Path, what: str) -> ExportError:
        return ExportError(f"{path} exists and {what}; it would be replaced by --out {out}: move it away or "
                           f"choose another --out")

    for what, path in files.items():
        if not os.path.lexists(path):
            continue
        if not path.is_file():
            raise refuse(path, "is not a regular file")
        try:
            with path.open("rb") as fh:
                head = fh.read(1 << 16)
        except OSError as err:
            raise refuse(path, f"cannot be read ({err.strerror})") from None
        if what == "settings":
            try:
                found = json.loads(path.read_bytes()[: 256 << 20])
            except (ValueError, OSError):
                raise refuse(path, "is not the JSON descriptor of an s3t embed table") from None
            # Written by write_table: its digests; tables of earlier versions: their settings.
            if not isinstance(found, dict) or not (isinstance(found.get("sha256"), dict)
                                                   or {"checkpoint_sha256", "dim"} <= found.keys()):
                raise refuse(path, "is not the JSON descriptor of an s3t embed table")
            continue
        if what in _HEADERS:
            ours = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace") == _HEADERS[what]
        else:
            ours = head.startswith(_MAGIC[output_format(out)])
        if not ours:
            raise refuse(path, f"is not the {what} file of an s3t embed table")
        if not os.path.lexists(settings):
            raise refuse(path, f"has no {settings.name} beside it, so it was not written by s3t embed (or only "
                               f"half of its table was)")


def write_table(out: str | os.PathLike, table: EmbeddingTable, rejected: Sequence[tuple[str, str]]) -> list[Path]:
    """Write ``table`` in the format of ``out``'s suffix, with its rejected files and its descriptor
    (settings, source stamps, digests); return the paths written. All are written to temporary
    names first and renamed into place together, the descriptor last (see the module docstring)."""
    fmt = output_format(out)
    files = table_files(out)
    out = files["table"]
    out.parent.mkdir(parents=True, exist_ok=True)
    writers = {}
    if fmt == ".npy":
        def save(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.save(fh, table.embeddings.astype(np.float32, copy=False))

        writers["table"] = save
        writers["index"] = _csv_writer(INDEX_COLUMNS, ([csv_cell(p), f"{s:.3f}", f"{e:.3f}"]
                                                        for p, s, e in zip(table.paths, table.start_s, table.end_s)))
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
        writers["table"] = lambda tmp: pq.write_table(arrow, str(tmp))
    writers["rejected"] = _csv_writer(("path", "reason"), ([csv_cell(path_text(p)), csv_cell(r)] for p, r in rejected))
    temps = {what: _tmp_name(files[what]) for what in files}
    try:
        for what, write in writers.items():
            write(temps[what])
        digests = {what: file_sha256(temps[what]) for what in writers}
        descriptor = {**table.settings, "sha256": digests}
        temps["settings"].write_text(json.dumps(descriptor, indent=2) + "\n", encoding="utf-8")
        for what in files:  # the descriptor last: until it is renamed, the old table (if any) fails its digests
            os.replace(temps[what], files[what])
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return list(files.values())


def read_table(out: str | os.PathLike) -> EmbeddingTable:
    """Read back a table written by :func:`write_table` (settings from ``OUT.json``), checking its
    files against the descriptor's digests.

    Raises:
        ExportError: no descriptor, a damaged one, or files that do not match it; the message names
            the files and what to do.
    """
    fmt = output_format(out)
    files = table_files(out)
    out, settings_path = files["table"], files["settings"]
    names = ", ".join(str(p) for p in files.values())
    if not settings_path.is_file():
        raise ExportError(f"{out} has no {settings_path.name} beside it; it was not written by `s3t embed`")
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        digests = settings.pop("sha256", None)
        if not isinstance(settings, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise ExportError(f"{settings_path} is damaged (not the JSON an s3t embed table writes); delete {names} "
                          f"to embed the folder again") from None
    if isinstance(digests, dict):
        changed = [str(files[w]) for w, d in digests.items() if w in files and (not files[w].is_file() or file_sha256(files[w]) != d)]
        if changed:
            raise ExportError(f"{', '.join(changed)} do(es) not match the descriptor {settings_path} (an interrupted "
                              f"write or an edit); delete {names} to embed the folder again")
    try:
        if fmt == ".npy":
            embeddings = np.load(out)
            with files["index"].open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            table = EmbeddingTable(embeddings, [from_csv_cell(r["path"]) for r in rows],
                                   [float(r["start_s"]) for r in rows], [float(r["end_s"]) for r in rows], settings)
        else:
            _, pq = _pyarrow()
            arrow = pq.read_table(out)
            dim = arrow.schema.field("embedding").type.list_size
            flat = arrow.column("embedding").combine_chunks().flatten().to_numpy()
            table = EmbeddingTable(flat.reshape(-1, dim).astype(np.float32), arrow.column("path").to_pylist(),
                                   arrow.column("start_s").to_pylist(), arrow.column("end_s").to_pylist(), settings)
    except ExportError:
        raise
    except (ValueError, KeyError, TypeError, OSError, EOFError) as err:
        raise ExportError(f"the table at {out} is damaged ({type(err).__name__}: {err}); delete {names} to embed "
                          f"the folder again") from None
    return table


def write_part(path: Path, table: EmbeddingTable, stamps: dict[str, list[int]]) -> None:
    """One batch of finished files of a run in progress (``.npz``), written atomically, with the
    ``[size, mtime_ns]`` stamp of each source file (``stamps``: path -> stamp)."""
    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, embeddings=table.embeddings, paths=np.array(table.paths, dtype=str),
                     start_s=np.array(table.start_s, np.float64), end_s=np.array(table.end_s, np.float64),
                     source_paths=np.array(list(stamps), dtype=str),
                     source_stamps=np.array(list(stamps.values()), np.int64).reshape(-1, 2))

    _replace_into(path, save)


def read_part(path: Path, settings: dict[str, Any]) -> tuple[EmbeddingTable, dict[str, list[int]]]:
    """The rows of a batch written by :func:`write_part`, and its source stamps.

    Raises:
        ExportError: the part is damaged (it names the file).
    """
    try:
        with np.load(path) as data:
            table = EmbeddingTable(data["embeddings"], data["paths"].tolist(), data["start_s"].tolist(),
                                   data["end_s"].tolist(), settings)
            stamps = dict(zip(data["source_paths"].tolist(), data["source_stamps"].tolist()))
    except (ValueError, KeyError, OSError, EOFError) as err:
        raise ExportError(f"{path} (a part of an interrupted run) is damaged ({type(err).__name__}); delete it "
                          f"and rerun: its files are embedded again") from None
    return table, stamps


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # an optional dependency of the pipeline extra, not of the core library
        raise ExportError("writing Parquet needs pyarrow: pip install pyarrow (or use an --out ending in .npy)") from err
    return pa, pq
