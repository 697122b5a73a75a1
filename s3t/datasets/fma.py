"""FMA-small with its official 8:1:1 split (paper Section 3.1).

Layout (what ``fma_metadata.zip`` and ``fma_small.zip`` extract to)::

    <root>/fma_metadata/tracks.csv
    <root>/fma_small/<first 3 digits>/<6-digit id>.mp3      e.g. fma_small/000/000002.mp3

``tracks.csv`` has a two-row column header (``(section, field)``, e.g. ``('track',
'genre_top')``) and the track id as index; FMA-small is ``('set', 'subset') == 'small'``
(8,000 tracks, 8 genres), its split is ``('set', 'split')`` (training / validation / test)
and its label ``('track', 'genre_top')``.

Tracks 099134, 108925 and 133297 hold no audio (their mp3 files decode to 0 s; see the
FMA wiki). They are returned as :class:`SkippedTrack` records with the reason, not rows. Any
other listed track missing on disk raises :class:`DatasetError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from s3t.datasets import DatasetError, SkippedTrack, describe_missing
from s3t.manifest import ManifestRow

FMA_NO_AUDIO = {
    99134: "no audio in fma_small.zip (0 s, FMA wiki)",
    108925: "no audio in fma_small.zip (0 s, FMA wiki)",
    133297: "no audio in fma_small.zip (0 s, FMA wiki)",
}
"""FMA-small tracks without audio, id -> reason. All three are in the training split."""

FMA_SPLIT_NAMES = {"training": "train", "validation": "valid", "test": "test"}
"""``('set', 'split')`` values of ``tracks.csv`` -> manifest split names."""


def fma_audio_path(audio_dir: Path, track_id: int) -> Path:
    """``<audio_dir>/<first 3 digits>/<6-digit id>.mp3``, FMA's audio layout."""
    name = f"{track_id:06d}"
    return audio_dir / name[:3] / f"{name}.mp3"


def fma_manifest(root: str | os.PathLike[str]) -> tuple[list[ManifestRow], list[SkippedTrack]]:
    """Rows of FMA-small (label = top genre, official split) and the tracks skipped for lack of audio.

    Rows follow ``tracks.csv`` order. Raises :class:`DatasetError` when ``tracks.csv`` is
    missing or malformed, a small track has no genre or an unknown split, or a track's
    mp3 is not on disk.
    """
    import pandas as pd

    root = Path(root).resolve()
    tracks_csv = root / "fma_metadata" / "tracks.csv"
    audio_dir = root / "fma_small"
    if not tracks_csv.is_file():
        raise DatasetError(
            f"{tracks_csv} does not exist: FMA-small must be laid out as <root>/fma_metadata/tracks.csv and "
            f"<root>/fma_small/NNN/NNNNNN.mp3 (what fma_metadata.zip and fma_small.zip extract to)"
        )
    tracks = pd.read_csv(tracks_csv, index_col=0, header=[0, 1])
    needed = [("set", "subset"), ("set", "split"), ("track", "genre_top")]
    absent = [column for column in needed if column not in tracks.columns]
    if absent:
        raise DatasetError(f"{tracks_csv} lacks the columns {absent}; is it FMA's tracks.csv (two header rows)?")
    small = tracks[tracks[("set", "subset")] == "small"]
    if small.empty:
        raise DatasetError(f"{tracks_csv} lists no track with ('set', 'subset') == 'small'")

    rows: list[ManifestRow] = []
    skipped: list[SkippedTrack] = []
    missing: list[Path] = []
    for track_id, split_name, genre in zip(
        small.index, small[("set", "split")], small[("track", "genre_top")], strict=True
    ):
        track_id = int(track_id)
        split = FMA_SPLIT_NAMES.get(split_name)
        if split is None:
            raise DatasetError(
                f"{tracks_csv}: track {track_id:06d} has split {split_name!r}; expected one of "
                f"{', '.join(FMA_SPLIT_NAMES)}"
            )
        if track_id in FMA_NO_AUDIO:
            skipped.append(SkippedTrack(track_id=f"{track_id:06d}", split=split, reason=FMA_NO_AUDIO[track_id]))
            continue
        if not isinstance(genre, str) or not genre.strip():
            raise DatasetError(f"{tracks_csv}: small track {track_id:06d} has no ('track', 'genre_top') label")
        path = fma_audio_path(audio_dir, track_id)
        if not path.is_file():
            missing.append(path)
            continue
        rows.append(ManifestRow(path=str(path), labels=(genre.strip(),), split=split))
    if missing:
        raise DatasetError(
            f"FMA-small at {audio_dir} lacks {describe_missing(missing)}; restore them from fma_small.zip"
        )
    return rows, skipped
