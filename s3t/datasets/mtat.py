"""MagnaTagATune (MTAT) with the top-50 tags (paper Section 3.1).

Layout (``annotations_final.csv`` next to what the concatenated ``mp3.zip.00{1,2,3}``
extract to)::

    <root>/annotations_final.csv     tab-separated: clip_id, 188 tag columns (0/1), mp3_path
    <root>/mp3/<dir>/<file>.mp3      <dir> is one of 0-9, a-f; mp3_path is "<dir>/<file>.mp3"

Labels are the clip's tags among the top 50 (shipped in ``splits/mtat_top50_tags.txt``, in
the column order musicnn and CLMR use), in that order; a clip may have none of them.

The paper says it "followed the official partition", but MTAT has no official one. Two
conventions are offered:

- ``split="pons2017"`` (default): the clip-id lists used by CLMR, the paper's main
  comparison (jordipons/musicnn-training), 18,706 / 1,825 / 5,329 clips.
- ``split="directory"``: every clip in ``annotations_final.csv`` by its folder, 0-b train,
  c valid, d-f test, minus the three clips whose mp3 files are broken
  (:data:`MTAT_BROKEN_CLIPS`).

Every selected clip must be on disk; a missing one raises :class:`DatasetError`.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from s3t.datasets import DatasetError, describe_missing, read_split_list
from s3t.manifest import SPLITS, ManifestRow

MTAT_SPLITS = ("pons2017", "directory")
"""Accepted values of ``mtat_manifest(split=...)``."""

MTAT_BROKEN_CLIPS = frozenset({35644, 55753, 57881})
"""Clip ids whose mp3 files hold no decodable audio; never part of any split."""

MTAT_DIRECTORY_SPLIT = {**dict.fromkeys("0123456789ab", "train"), "c": "valid", **dict.fromkeys("def", "test")}
"""First folder of ``mp3_path`` -> split, for ``split="directory"``."""


def mtat_top50_tags() -> list[str]:
    """The 50 most frequent tags, in the shipped (musicnn/CLMR) order."""
    return read_split_list("mtat_top50_tags")


def mtat_manifest(root: str | os.PathLike[str], split: str = "pons2017") -> list[ManifestRow]:
    """Rows of MTAT with labels = the clip's top-50 tags (possibly none).

    ``split="pons2017"`` yields the shipped lists in order (train, valid, test);
    ``split="directory"`` yields ``annotations_final.csv`` in file order.

    Raises:
        DatasetError: unknown ``split``; ``annotations_final.csv`` missing or malformed
            (columns, duplicate clip ids, tag values other than 0/1); a listed clip not in
            it; an ``mp3_path`` outside folders 0-f; or selected mp3 files not on disk.
    """
    if split not in MTAT_SPLITS:
        raise DatasetError(f"MTAT split {split!r} is unknown; choose one of {', '.join(MTAT_SPLITS)}")
    import pandas as pd

    root = Path(root).resolve()
    annotations = root / "annotations_final.csv"
    mp3_dir = root / "mp3"
    if not annotations.is_file():
        raise DatasetError(
            f"{annotations} does not exist: MTAT must be laid out as <root>/annotations_final.csv and "
            f"<root>/mp3/<0-f>/<file>.mp3 (the concatenated mp3.zip parts extracted into mp3/)"
        )
    table = pd.read_csv(annotations, sep="\t", keep_default_na=False)
    tags = mtat_top50_tags()
    absent = [column for column in ["clip_id", "mp3_path", *tags] if column not in table.columns]
    if absent:
        raise DatasetError(
            f"{annotations} lacks the columns {absent}; is it MTAT's tab-separated annotations_final.csv?"
        )
    if not all(str(clip).isdigit() for clip in table["clip_id"]):
        raise DatasetError(f"{annotations}: every clip_id must be a non-negative integer")
    clip_ids = [int(clip) for clip in table["clip_id"]]
    position = {clip: i for i, clip in enumerate(clip_ids)}
    if len(position) != len(clip_ids):
        repeated = sorted(clip for clip, n in Counter(clip_ids).items() if n > 1)[:5]
        raise DatasetError(f"{annotations} repeats clip ids, e.g. {repeated}")
    tag_matrix = table[tags].to_numpy()
    bad_rows, bad_cols = np.nonzero(~np.isin(tag_matrix, (0, 1)))
    if bad_rows.size:
        row, col = bad_rows[0], bad_cols[0]
        raise DatasetError(
            f"{annotations}: clip {clip_ids[row]} has value {tag_matrix[row, col]!r} for tag {tags[col]!r}; "
            f"tag columns must be 0 or 1"
        )
    mp3_paths = [str(p) for p in table["mp3_path"]]

    if split == "pons2017":
        selection: list[tuple[int, str]] = []
        unknown: list[int] = []
        for split_name in SPLITS:
            for clip in map(int, read_split_list(f"mtat_pons2017_{split_name}")):
                if clip in position:
                    selection.append((position[clip], split_name))
                else:
                    unknown.append(clip)
        if unknown:
            raise DatasetError(
                f"{annotations} lacks {len(unknown)} clip id(s) of the pons2017 lists, e.g. {unknown[:5]}; "
                f"is it the complete annotations_final.csv?"
            )
    else:
        selection = []
        for i, clip in enumerate(clip_ids):
            if clip in MTAT_BROKEN_CLIPS:
                continue
            folder = mp3_paths[i].split("/", 1)[0]
            if folder not in MTAT_DIRECTORY_SPLIT:
                raise DatasetError(
                    f"{annotations}: clip {clip} has mp3_path {mp3_paths[i]!r}, not in a folder 0-f, "
                    f"so split='directory' cannot place it"
                )
            selection.append((i, MTAT_DIRECTORY_SPLIT[folder]))

    rows: list[ManifestRow] = []
    missing: list[Path] = []
    for i, split_name in selection:
        if not mp3_paths[i]:
            raise DatasetError(f"{annotations}: clip {clip_ids[i]} has an empty mp3_path")
        path = mp3_dir / mp3_paths[i]
        if not path.is_file():
            missing.append(path)
            continue
        labels = tuple(tag for tag, on in zip(tags, tag_matrix[i]) if on == 1)
        rows.append(ManifestRow(path=str(path), labels=labels, split=split_name))
    if missing:
        raise DatasetError(f"MTAT at {mp3_dir} lacks {describe_missing(missing)}; restore them from the mp3.zip parts")
    return rows
