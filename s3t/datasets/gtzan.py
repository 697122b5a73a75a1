"""GTZAN genre collection with the fault-filtered split (paper Section 3.1).

Layout (what ``genres.tar.gz`` extracts to)::

    <root>/genres/<genre>/<genre>.000NN.wav     (.au in some copies of the collection)

The paper uses the "fault-filtered" split of Kereliuk, Sturm & Larsen (2015), which drops
the repeated, distorted and mislabeled excerpts Sturm identified and keeps artists apart
across splits: 443 train / 197 valid / 290 test of the 1,000 clips. The lists ship in
``splits/gtzan_filtered_{train,valid,test}.txt`` as track ids such as ``blues.00012``.

Every listed track must be on disk: a missing one raises :class:`DatasetError` naming the
files, because a silently shorter test set would make accuracies incomparable.
"""

from __future__ import annotations

import os
from pathlib import Path

from s3t.datasets import DatasetError, describe_missing, read_split_list
from s3t.manifest import SPLITS, ManifestRow

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
"""The ten genre labels (folder names of the collection)."""

GTZAN_EXTENSIONS = (".wav", ".au")
"""Audio suffixes a GTZAN copy may use, in order of preference."""


def gtzan_manifest(root: str | os.PathLike[str]) -> list[ManifestRow]:
    """Rows of the fault-filtered split, label = genre, in list order (train, valid, test).

    Raises:
        DatasetError: ``<root>/genres`` is missing, or listed tracks are not on disk.
    """
    genres_dir = Path(root).resolve() / "genres"
    if not genres_dir.is_dir():
        raise DatasetError(
            f"{genres_dir} does not exist: GTZAN must be laid out as <root>/genres/<genre>/<genre>.000NN.wav "
            f"(what genres.tar.gz extracts to); pass the folder that contains 'genres'"
        )
    rows: list[ManifestRow] = []
    missing: list[Path] = []
    for split in SPLITS:
        for track_id in read_split_list(f"gtzan_filtered_{split}"):
            genre = track_id.split(".", 1)[0]
            candidates = [genres_dir / genre / f"{track_id}{ext}" for ext in GTZAN_EXTENSIONS]
            found = next((path for path in candidates if path.is_file()), None)
            if found is None:
                missing.append(candidates[0])
                continue
            rows.append(ManifestRow(path=str(found), labels=(genre,), split=split))
    if missing:
        raise DatasetError(
            f"GTZAN at {genres_dir} lacks {describe_missing(missing)} (also looked for .au) of the fault-filtered "
            f"split; restore them from genres.tar.gz"
        )
    return rows
