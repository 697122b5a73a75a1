"""The real evaluation datasets of the paper (Section 3.1) as labeled-audio manifests.

Each loader is a pure function of a root folder holding the dataset in the layout its
official archive extracts to, and returns :class:`s3t.manifest.ManifestRow` objects with
absolute paths; :func:`write_dataset_manifest` stores them as ``<root>/manifest.csv``.
Downloading and unpacking live in :mod:`s3t.datasets.download`.

- GTZAN (:mod:`s3t.datasets.gtzan`): the "fault-filtered" split of Kereliuk, Sturm & Larsen
  (2015), shipped in ``splits/``.
- FMA-small (:mod:`s3t.datasets.fma`): the official split column of ``tracks.csv``.
- MagnaTagATune (:mod:`s3t.datasets.mtat`): top-50 tags, split ``pons2017`` (shipped lists)
  or ``directory``.

Where the paper is ambiguous (Section 3.1):

- MTAT: "We followed the official partition" -- MTAT has no official partition. The
  comparison the paper draws is with CLMR, which uses the ``pons2017`` split (the
  musicnn-training lists), so that is the default; the older directory convention
  (0-b train, c valid, d-f test) is available as ``split="directory"``.
- FMA-small: the paper says 8,000 clips, but tracks 099134, 108925 and 133297 hold no
  audio. They are skipped and returned as :class:`SkippedTrack` records, never dropped
  silently. All three belong to the ``training`` split (per a published audit of
  ``tracks.csv``; this could not be re-checked offline), so a complete copy yields
  6,397 / 800 / 800 rows against the published 6,400 / 800 / 800.

Unlabeled pre-training audio needs no manifest: :func:`folder_manifest` lists it. A user's
own labeled data is simply a manifest CSV (:func:`s3t.manifest.read_manifest`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

from s3t.audio import find_audio_files
from s3t.manifest import SPLITS, ManifestRow, write_manifest

DATASET_NAMES = ("gtzan", "fma_small", "mtat")
"""Names accepted by :func:`write_dataset_manifest` and :func:`s3t.datasets.download.fetch_dataset`."""

MANIFEST_NAME = "manifest.csv"
"""File name of a dataset's manifest inside its root folder."""

PUBLISHED_COUNTS: dict[str, dict[str, int]] = {
    # Kereliuk, Sturm & Larsen (2015) fault-filtered split.
    "gtzan": {"train": 443, "valid": 197, "test": 290},
    # Defferrard et al. (2017) official 8:1:1 split, including the three tracks without audio
    # (all in "train"; see the module docstring).
    "fma_small": {"train": 6400, "valid": 800, "test": 800},
    # The pons2017 split used by CLMR (musicnn-training lists).
    "mtat": {"train": 18706, "valid": 1825, "test": 5329},
}
"""Published per-split clip counts of each dataset's default split, for validating a copy."""


class DatasetError(ValueError):
    """A dataset folder that does not match the layout or contents its loader expects."""


@dataclass(frozen=True)
class SkippedTrack:
    """A listed track left out of a manifest on purpose, with the reason why."""

    track_id: str
    split: str
    reason: str


def read_split_list(name: str) -> list[str]:
    """The ids of a shipped list, e.g. ``read_split_list("gtzan_filtered_train")``.

    The lists are package data (``s3t/datasets/splits/<name>.txt``, one id per line).
    """
    resource = resources.files(__package__).joinpath("splits", f"{name}.txt")
    if not resource.is_file():
        shipped = sorted(p.name.removesuffix(".txt") for p in resources.files(__package__).joinpath("splits").iterdir())
        raise DatasetError(f"no shipped list named {name!r}; the lists are {', '.join(shipped)}")
    return [line.strip() for line in resource.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_counts(rows: Iterable[ManifestRow]) -> dict[str, int]:
    """Rows per split, with every split present (zero when empty)."""
    counts = dict.fromkeys(SPLITS, 0)
    for row in rows:
        counts[row.split] += 1
    return counts


def describe_missing(paths: list[Path], limit: int = 5) -> str:
    """``"<n> files, e.g. a, b, ..."``: a bounded description for error messages."""
    shown = ", ".join(str(p) for p in paths[:limit])
    more = f" (and {len(paths) - limit} more)" if len(paths) > limit else ""
    return f"{len(paths)} file(s): {shown}{more}"


def folder_manifest(root: str | os.PathLike[str]) -> list[Path]:
    """Every audio file under ``root`` for unlabeled pre-training (see :func:`s3t.audio.find_audio_files`)."""
    return find_audio_files(root)


def write_dataset_manifest(
    name: str,
    root: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    mtat_split: str = "pons2017",
) -> tuple[Path, list[SkippedTrack]]:
    """Build dataset ``name``'s manifest from ``root`` and write it (default ``<root>/manifest.csv``).

    Returns the manifest's path and the tracks deliberately left out (FMA-small's tracks
    without audio; empty for the other datasets) so that callers can report them.
    """
    skipped: list[SkippedTrack] = []
    if name == "gtzan":
        rows = gtzan_manifest(root)
    elif name == "fma_small":
        rows, skipped = fma_manifest(root)
    elif name == "mtat":
        rows = mtat_manifest(root, split=mtat_split)
    else:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    out = Path(root) / MANIFEST_NAME if path is None else Path(path)
    write_manifest(rows, out)
    return out, skipped


# The loaders import DatasetError and the helpers above from this package, so they are
# imported last, once those names exist.
from s3t.datasets.fma import FMA_NO_AUDIO, fma_manifest  # noqa: E402
from s3t.datasets.gtzan import GTZAN_GENRES, gtzan_manifest  # noqa: E402
from s3t.datasets.mtat import MTAT_BROKEN_CLIPS, MTAT_SPLITS, mtat_manifest, mtat_top50_tags  # noqa: E402

__all__ = [
    "DATASET_NAMES",
    "FMA_NO_AUDIO",
    "GTZAN_GENRES",
    "MANIFEST_NAME",
    "MTAT_BROKEN_CLIPS",
    "MTAT_SPLITS",
    "PUBLISHED_COUNTS",
    "DatasetError",
    "SkippedTrack",
    "describe_missing",
    "fma_manifest",
    "folder_manifest",
    "gtzan_manifest",
    "mtat_manifest",
    "mtat_top50_tags",
    "read_split_list",
    "split_counts",
    "write_dataset_manifest",
]
