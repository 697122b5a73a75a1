"""Dataset loaders on tiny fixture trees in each dataset's real on-disk layout.

The builders here are shared with tests/test_download.py, which packs the same trees into
archives in the published formats.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from s3t.datasets import (
    FMA_NO_AUDIO,
    GTZAN_GENRES,
    MTAT_BROKEN_CLIPS,
    PUBLISHED_COUNTS,
    DatasetError,
    SkippedTrack,
    fma_manifest,
    folder_manifest,
    gtzan_manifest,
    mtat_manifest,
    mtat_top50_tags,
    read_split_list,
    split_counts,
    write_dataset_manifest,
)
from s3t.manifest import SPLITS, read_manifest
from tests.conftest import tone

SR = 22050


def write_clip(path: Path, freq_hz: float = 440.0, fmt: str | None = None) -> Path:
    """A real 20-ms tone in the format given by the suffix (or ``fmt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq_hz, seconds=0.02, sample_rate=SR), SR, format=fmt)
    return path


def gtzan_ids() -> dict[str, list[str]]:
    return {split: read_split_list(f"gtzan_filtered_{split}") for split in SPLITS}


def build_gtzan_tree(root: Path) -> Path:
    """``root/genres/<genre>/<id>.wav`` for every track id of the fault-filtered split, plus a stray .mf list.

    One real wav per genre is hard-linked to all its tracks, which keeps building fast.
    """
    for genre in GTZAN_GENRES:
        write_clip(root / f"{genre}.wav", 200.0 + 50 * GTZAN_GENRES.index(genre))
    for ids in gtzan_ids().values():
        for track_id in ids:
            genre = track_id.split(".")[0]
            (root / "genres" / genre).mkdir(parents=True, exist_ok=True)
            os.link(root / f"{genre}.wav", root / "genres" / genre / f"{track_id}.wav")
    for genre in GTZAN_GENRES:
        (root / f"{genre}.wav").unlink()
    (root / "genres" / "input.mf").write_text("blues/blues.00000.wav\tblues\n")
    return root


# (track id, subset, split, genre); 99134 has no audio in the real archive.
FMA_TRACKS = [
    (2, "small", "training", "Hip-Hop"),
    (5, "small", "training", "Hip-Hop"),
    (140, "small", "validation", "Folk"),
    (141, "small", "test", "Folk"),
    (1482, "small", "training", "Rock"),
    (3, "medium", "training", "Hip-Hop"),
    (20, "large", "test", "Pop"),
    (99134, "small", "training", "Electronic"),
    (108925, "small", "training", "Rock"),
    (133297, "small", "training", "Experimental"),
]


def build_fma_tree(root: Path) -> Path:
    """``fma_metadata/tracks.csv`` with FMA's two-row header, and ``fma_small/NNN/NNNNNN.mp3`` for small tracks."""
    import pandas as pd

    columns = pd.MultiIndex.from_tuples(
        [
            ("album", "title"),
            ("artist", "name"),
            ("set", "split"),
            ("set", "subset"),
            ("track", "genre_top"),
            ("track", "title"),
        ]
    )
    data = [
        [f"album {tid}", f"artist {tid}", split, subset, genre, f"title {tid}"]
        for tid, subset, split, genre in FMA_TRACKS
    ]
    table = pd.DataFrame(data, index=pd.Index([t[0] for t in FMA_TRACKS], name="track_id"), columns=columns)
    (root / "fma_metadata").mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "fma_metadata" / "tracks.csv")
    for tid, subset, _, _ in FMA_TRACKS:
        name = f"{tid:06d}"
        path = root / "fma_small" / name[:3] / f"{name}.mp3"
        if tid in FMA_NO_AUDIO:
            # The real archive ships these as files without audio.
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        elif subset == "small":
            write_clip(path, 300.0 + tid % 100)
    return root


def write_annotations(
    path: Path, clip_ids: list[int], mp3_paths: list[str], tags: list[str], values: np.ndarray
) -> None:
    """MTAT's ``annotations_final.csv``: tab-separated, every field double-quoted."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *tags, "mp3_path"])
        for clip, mp3, row in zip(clip_ids, mp3_paths, values):
            writer.writerow([clip, *map(int, row), mp3])


# clip id -> (mp3_path, tags set to 1). Clip 57881 is one of the broken ones.
MTAT_CLIPS = {
    2: ("f/american_bach_soloists-bach_cantatas-01-bwv54__i_aria-30-59.mp3", ["classical", "violin", "strings"]),
    6: ("f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-88-117.mp3", ["hard rock"]),
    14: ("0/jeff_wahl-guitar_wizard-01-overture-0-29.mp3", ["guitar", "no vocals", "soft"]),
    19: ("c/jeff_wahl-guitar_wizard-02-intro-0-29.mp3", ["techno", "drums"]),
    25: ("b/tilopa-turkishauch-03-kokoro-30-59.mp3", []),
    57881: ("e/broken-clip-0-29.mp3", ["rock"]),
}
EXTRA_TAGS = ["hard rock", "singer", "rap", "water"]


def build_mtat_tree(root: Path, clips: dict[int, tuple[str, list[str]]] = MTAT_CLIPS) -> Path:
    """``annotations_final.csv`` (top-50 and other tags, shuffled columns) and ``mp3/<dir>/<file>.mp3``."""
    tags = mtat_top50_tags() + EXTRA_TAGS
    order = np.random.default_rng(0).permutation(len(tags))
    tags = [tags[i] for i in order]
    values = np.array([[int(tag in on) for tag in tags] for _, on in clips.values()])
    root.mkdir(parents=True, exist_ok=True)
    write_annotations(root / "annotations_final.csv", list(clips), [p for p, _ in clips.values()], tags, values)
    for clip, (mp3, _) in clips.items():
        if clip in MTAT_BROKEN_CLIPS:
            (root / "mp3" / mp3).parent.mkdir(parents=True, exist_ok=True)
            (root / "mp3" / mp3).write_bytes(b"")
        else:
            write_clip(root / "mp3" / mp3, 500.0 + clip)
    return root


def build_full_mtat_tree(root: Path) -> Path:
    """All 25,860 listed clips plus the broken three, placed in folders consistent with the pons2017 split."""
    folders = {"train": "0123456789ab", "valid": "c", "test": "def"}
    clip_ids: list[int] = []
    mp3_paths: list[str] = []
    for split in SPLITS:
        for i, clip in enumerate(map(int, read_split_list(f"mtat_pons2017_{split}"))):
            clip_ids.append(clip)
            mp3_paths.append(f"{folders[split][i % len(folders[split])]}/clip-{clip}.mp3")
    for clip in sorted(MTAT_BROKEN_CLIPS):
        clip_ids.append(clip)
        mp3_paths.append(f"0/broken-{clip}.mp3")
    tags = mtat_top50_tags()
    values = np.random.default_rng(1).random((len(clip_ids), len(tags))) < 0.05
    root.mkdir(parents=True, exist_ok=True)
    write_annotations(root / "annotations_final.csv", clip_ids, mp3_paths, tags, values)
    # One real mp3 hard-linked to every path keeps the tree tiny and fast to build.
    source = write_clip(root / "source.mp3", fmt="MP3")
    for folder in "0123456789abcdef":
        (root / "mp3" / folder).mkdir(parents=True)
    for clip, mp3 in zip(clip_ids, mp3_paths):
        if clip in MTAT_BROKEN_CLIPS:
            (root / "mp3" / mp3).write_bytes(b"")
        else:
            os.link(source, root / "mp3" / mp3)
    return root


# --- shipped split lists -------------------------------------------------------------------


@pytest.mark.parametrize("prefix, dataset", [("gtzan_filtered", "gtzan"), ("mtat_pons2017", "mtat")])
def test_shipped_lists_have_published_counts_and_are_disjoint(prefix, dataset):
    lists = {split: read_split_list(f"{prefix}_{split}") for split in SPLITS}
    assert {split: len(ids) for split, ids in lists.items()} == PUBLISHED_COUNTS[dataset]
    assert all(len(set(ids)) == len(ids) for ids in lists.values())
    assert not set(lists["train"]) & set(lists["valid"])
    assert not set(lists["train"]) & set(lists["test"])
    assert not set(lists["valid"]) & set(lists["test"])


def test_shipped_gtzan_ids_name_known_genres_and_mtat_lists_exclude_broken_clips():
    for ids in gtzan_ids().values():
        for track_id in ids:
            genre, number = track_id.split(".")
            assert genre in GTZAN_GENRES and len(number) == 5 and number.isdigit()
    listed = {int(c) for split in SPLITS for c in read_split_list(f"mtat_pons2017_{split}")}
    assert not listed & MTAT_BROKEN_CLIPS
    tags = mtat_top50_tags()
    assert len(tags) == 50 == len(set(tags)) and tags[:3] == ["guitar", "classical", "slow"]


def test_unknown_shipped_list_names_the_available_ones():
    with pytest.raises(DatasetError, match="gtzan_filtered_train"):
        read_split_list("gtzan_random")


# --- GTZAN ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gtzan_root(tmp_path_factory):
    return build_gtzan_tree(tmp_path_factory.mktemp("gtzan"))


def test_gtzan_manifest_follows_the_fault_filtered_split(gtzan_root):
    rows = gtzan_manifest(gtzan_root)
    assert split_counts(rows) == PUBLISHED_COUNTS["gtzan"]
    by_id = {Path(row.path).stem: row for row in rows}
    assert by_id["blues.00012"].split == "test" and by_id["blues.00000"].split == "valid"
    assert by_id["blues.00029"].split == "train"
    for row in rows:
        path = Path(row.path)
        assert path.is_absolute() and path.is_file()
        assert row.labels == (path.parent.name,) == (path.name.split(".")[0],)


def test_gtzan_accepts_au_files(tmp_path):
    root = build_gtzan_tree(tmp_path)
    track_id = gtzan_ids()["valid"][0]
    wav = root / "genres" / track_id.split(".")[0] / f"{track_id}.wav"
    wav.unlink()
    write_clip(wav.with_suffix(".au"), fmt="AU")
    rows = gtzan_manifest(root)
    assert split_counts(rows) == PUBLISHED_COUNTS["gtzan"]
    assert str(wav.with_suffix(".au")) in {row.path for row in rows}


def test_gtzan_missing_listed_tracks_raise_naming_them(tmp_path):
    root = build_gtzan_tree(tmp_path)
    removed = [gtzan_ids()["test"][0], gtzan_ids()["train"][-1]]
    for track_id in removed:
        (root / "genres" / track_id.split(".")[0] / f"{track_id}.wav").unlink()
    with pytest.raises(DatasetError) as err:
        gtzan_manifest(root)
    message = str(err.value)
    assert "lacks 2 file(s)" in message
    assert all(f"{track_id}.wav" in message for track_id in removed)


def test_gtzan_without_genres_folder_says_what_layout_is_expected(tmp_path):
    with pytest.raises(DatasetError, match=r"genres/<genre>"):
        gtzan_manifest(tmp_path)


# --- FMA-small -----------------------------------------------------------------------------


def test_fma_manifest_reads_two_row_header_and_skips_tracks_without_audio(tmp_path):
    root = build_fma_tree(tmp_path)
    rows, skipped = fma_manifest(root)
    assert [(Path(r.path).name, r.labels, r.split) for r in rows] == [
        ("000002.mp3", ("Hip-Hop",), "train"),
        ("000005.mp3", ("Hip-Hop",), "train"),
        ("000140.mp3", ("Folk",), "valid"),
        ("000141.mp3", ("Folk",), "test"),
        ("001482.mp3", ("Rock",), "train"),
    ]
    assert Path(rows[-1].path) == root.resolve() / "fma_small" / "001" / "001482.mp3"
    assert [s.track_id for s in skipped] == ["099134", "108925", "133297"]
    assert all(isinstance(s, SkippedTrack) and s.split == "train" and "no audio" in s.reason for s in skipped)


def test_fma_missing_audio_raises_naming_the_file(tmp_path):
    root = build_fma_tree(tmp_path)
    (root / "fma_small" / "000" / "000140.mp3").unlink()
    with pytest.raises(DatasetError, match=r"000/000140\.mp3"):
        fma_manifest(root)


def test_fma_unknown_split_and_missing_metadata_are_reported(tmp_path):
    with pytest.raises(DatasetError, match="tracks.csv"):
        fma_manifest(tmp_path)
    root = build_fma_tree(tmp_path)
    csv_path = root / "fma_metadata" / "tracks.csv"
    csv_path.write_text(csv_path.read_text().replace("validation", "holdout"))
    with pytest.raises(DatasetError, match="holdout"):
        fma_manifest(root)


# --- MagnaTagATune -------------------------------------------------------------------------


def test_mtat_labels_are_top50_tags_in_shipped_order(tmp_path):
    root = build_mtat_tree(tmp_path)
    rows = {Path(r.path).name: r for r in mtat_manifest(root, split="directory")}
    top = mtat_top50_tags()
    assert rows[Path(MTAT_CLIPS[2][0]).name].labels == tuple(t for t in top if t in {"classical", "violin", "strings"})
    assert rows[Path(MTAT_CLIPS[2][0]).name].labels == ("classical", "strings", "violin")
    # "hard rock" is not a top-50 tag: the clip stays, with no label.
    assert rows[Path(MTAT_CLIPS[6][0]).name].labels == ()
    assert rows[Path(MTAT_CLIPS[25][0]).name].labels == ()
    assert rows[Path(MTAT_CLIPS[14][0]).name].labels == ("guitar", "no vocals", "soft")


def test_mtat_directory_split_maps_folders_and_drops_broken_clips(tmp_path):
    root = build_mtat_tree(tmp_path)
    rows = mtat_manifest(root, split="directory")
    splits = {Path(r.path).parent.name + "/" + Path(r.path).name: r.split for r in rows}
    expected = [(2, "test"), (6, "test"), (14, "train"), (19, "valid"), (25, "train")]
    assert splits == {MTAT_CLIPS[clip][0]: split for clip, split in expected}
    assert all(Path(r.path).is_file() and Path(r.path).stat().st_size > 0 for r in rows)


def test_mtat_pons2017_reproduces_published_counts_and_agrees_with_directories(tmp_path):
    root = build_full_mtat_tree(tmp_path)
    pons = mtat_manifest(root)
    assert split_counts(pons) == PUBLISHED_COUNTS["mtat"]
    directory = mtat_manifest(root, split="directory")
    assert {(r.path, r.split) for r in directory} == {(r.path, r.split) for r in pons}
    assert not any("broken" in r.path for r in pons)


def test_mtat_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="pons2017, directory"):
        mtat_manifest(tmp_path, split="random")
    with pytest.raises(DatasetError, match="annotations_final.csv"):
        mtat_manifest(tmp_path)
    root = build_mtat_tree(tmp_path)
    listed_in_fixture = 5  # clips 2, 6, 14, 19 and 25 are in the pons2017 lists
    with pytest.raises(DatasetError, match=f"lacks {25860 - listed_in_fixture} clip id"):
        mtat_manifest(root, split="pons2017")
    (root / "mp3" / MTAT_CLIPS[19][0]).unlink()
    with pytest.raises(DatasetError, match="jeff_wahl-guitar_wizard-02-intro-0-29.mp3"):
        mtat_manifest(root, split="directory")


# --- manifests and unlabeled folders -------------------------------------------------------


def test_write_dataset_manifest_round_trips_and_reports_skipped(tmp_path):
    root = build_fma_tree(tmp_path / "fma")
    path, skipped = write_dataset_manifest("fma_small", root)
    assert path == root / "manifest.csv"
    assert read_manifest(path) == fma_manifest(root)[0]
    assert {s.track_id for s in skipped} == {f"{t:06d}" for t in FMA_NO_AUDIO}
    mtat_root = build_mtat_tree(tmp_path / "mtat")
    out, none_skipped = write_dataset_manifest("mtat", mtat_root, tmp_path / "mtat.csv", mtat_split="directory")
    assert none_skipped == [] and read_manifest(out) == mtat_manifest(mtat_root, split="directory")
    with pytest.raises(DatasetError, match="gtzan, fma_small, mtat"):
        write_dataset_manifest("audioset", tmp_path)


def test_folder_manifest_lists_audio_recursively(tmp_path):
    write_clip(tmp_path / "a" / "x.wav")
    write_clip(tmp_path / "b" / "c" / "y.FLAC", fmt="FLAC")
    (tmp_path / "notes.txt").write_text("not audio")
    assert folder_manifest(tmp_path) == [tmp_path / "a" / "x.wav", tmp_path / "b" / "c" / "y.FLAC"]


def test_importing_the_datasets_package_does_not_import_pandas():
    code = "import sys, s3t.datasets, s3t.datasets.download; sys.exit('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
