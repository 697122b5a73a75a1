"""The soundtracks dataset: shipped index, clip plan, fetching from fake .deb files in the real
layout (hand-placed and through a stand-in apt-get), verification, resuming, clips and manifest."""

from __future__ import annotations

import collections
import io
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from s3t.datasets.download import ChecksumError, DownloadError, UnsafeArchiveError
from s3t.datasets.pool_task import pool_task_entries
from s3t.datasets.soundtracks import (
    PACKAGES, TRANSFER_PACKAGES, IndexEntry, clip_plan, fetch_soundtracks, make_clips, pretraining_entries, read_index,
    soundtracks_available, split_tracks, transfer_entries, transfer_plan,
)
from s3t.manifest import read_manifest
from tests.conftest import tone
from tests.debs import build_deb

ALLOWED = {
    "ufoai-music", "singularity-music", "colobot-common-sounds", "drascula-music", "hedgewars-data",
    "marsshooter-data", "pushover-data", "asc-music", "fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid",
    "freedroidrpg-data", "flare-game", "naev-data", "widelands-data",
}
MUSIC = "usr/share/games/singularity/music"


def _ogg(freq: float, seconds: float) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, tone(freq, seconds, 22050), 22050, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def _entries(files: dict[str, bytes], splits: dict[str, str], version: str = "1.0-1") -> list[IndexEntry]:
    import hashlib

    out = []
    for name, data in files.items():
        duration = soundfile.info(io.BytesIO(data)).duration
        out.append(IndexEntry("singularity-music", version, f"{MUSIC}/{name}", hashlib.sha256(data).hexdigest(),
                              duration, "CC-BY-SA-3.0", Path(name).stem, splits[name]))
    return out


@pytest.fixture(scope="module")
def package():
    """Four tiny tracks of one package (3-7 s), their index entries and a sound effect not in the index."""
    files = {"a.ogg": _ogg(220, 7.0), "b.ogg": _ogg(330, 6.0), "c.ogg": _ogg(440, 4.0), "d.ogg": _ogg(550, 3.0)}
    splits = {"a.ogg": "train", "b.ogg": "valid", "c.ogg": "test", "d.ogg": ""}
    return files, _entries(files, splits)


def _place(root: Path, files: dict[str, bytes], version: str = "1.0-1", **kw) -> Path:
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    content = {f"{MUSIC}/{k}": v for k, v in files.items()} | {"usr/share/games/singularity/sounds/click.ogg": b"x"}
    return build_deb(downloads / f"singularity-music_{version}_all.deb", "singularity-music", version, content, **kw)


# ----------------------------------------------------------------------------- the shipped index


def test_shipped_index_gives_five_classes_of_fifteen_tracks_split_by_track():
    entries = read_index()
    assert {e.package for e in entries} <= ALLOWED and set(PACKAGES) <= ALLOWED
    task = collections.Counter(e.package for e in entries if e.split)
    assert len(task) >= 5 and min(task.values()) >= 15
    assert len({e.sha256 for e in entries}) == len(entries)  # no track twice, in any folder
    assert len({e.track for e in entries}) == len(entries)  # one split per track, by construction
    assert all(e.duration_s >= 30 for e in entries)
    for package in task:
        assert {e.split for e in entries if e.package == package} >= {"train", "valid", "test"}
    assert all(e.licence == PACKAGES[e.package].licence for e in entries)


def test_split_tracks_is_by_track_deterministic_and_leaves_short_tracks_to_pretraining():
    entries = read_index()
    again = split_tracks([IndexEntry(**{**e.__dict__, "split": ""}) for e in entries])
    assert again == entries  # the shipped splits are what split_tracks gives
    assert all(e.split == "" for e in again if e.duration_s < 40)


def test_packages_without_a_class_give_pretraining_audio_only():
    entries = read_index()
    unlabeled_only = {name for name, info in PACKAGES.items() if not info.label}
    assert unlabeled_only and unlabeled_only <= {e.package for e in entries}
    # Even a long track of such a package gets no task split, whatever the order split_tracks sees.
    again = split_tracks([IndexEntry(**{**e.__dict__, "split": ""}) for e in reversed(entries)])
    assert all(e.split == "" for e in again if e.package in unlabeled_only)
    assert any(e.duration_s >= 90 for e in entries if e.package in unlabeled_only)
    plan = clip_plan(entries)
    for c in plan:
        if c.entry.package in unlabeled_only:
            assert c.split == "unlabeled" and c.path.startswith(f"unlabeled/{c.entry.package}/{c.entry.package}--")
    task_labels = {PACKAGES[c.entry.package].label for c in plan if c.split != "unlabeled"}
    assert "" not in task_labels and len(task_labels) == 5


def test_the_index_without_pretraining_packages_is_the_task_packages_whole():
    entries, task_only = read_index(), read_index(pretraining_packages=False)
    assert {e.package for e in task_only} == {name for name, info in PACKAGES.items() if info.label}
    assert task_only == [e for e in entries if PACKAGES[e.package].label]
    assert len(task_only) < len(entries)
    # The task is the same either way: the clips of the train/valid/test splits do not change.
    task = [c for c in clip_plan(entries) if c.split != "unlabeled"]
    assert task == [c for c in clip_plan(task_only) if c.split != "unlabeled"]


def test_clip_plan_never_cuts_test_tracks_for_pretraining():
    plan = clip_plan(read_index())
    test_tracks = {c.entry.track for c in plan if c.split == "test"}
    pretraining = {c.entry.track for c in plan if c.split == "unlabeled"}
    assert test_tracks and pretraining and not test_tracks & pretraining
    by_track = collections.defaultdict(list)
    for c in plan:
        if c.split != "unlabeled":
            by_track[c.entry.track].append(c)
    for clips in by_track.values():
        d = clips[0].entry.duration_s
        assert len(clips) == (3 if d >= 90 else 2)
        assert all(0 <= c.start_s < c.end_s <= d + 1e-6 and c.end_s - c.start_s <= 30 + 1e-6 for c in clips)
        if d >= 90:  # different positions, no overlap
            spans = sorted((c.start_s, c.end_s) for c in clips)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert len({c.path for c in plan}) == len(plan)


# ----------------------------------------------------------------------------- fetching


def test_fetch_from_hand_placed_deb_extracts_only_the_music_and_verifies_it(tmp_path, package):
    files, entries = package
    _place(tmp_path, files)
    report = fetch_soundtracks(tmp_path, entries, apt_get=None)
    assert report["fetched"] == 4
    extracted = sorted(p.relative_to(tmp_path / "tracks").as_posix() for p in (tmp_path / "tracks").rglob("*.ogg"))
    assert extracted == sorted(f"singularity-music/{MUSIC}/{name}" for name in files)  # no sound effect
    for name, data in files.items():
        target = tmp_path / "tracks" / "singularity-music" / MUSIC / name
        assert target.read_bytes() == data and stat.S_IMODE(target.stat().st_mode) == 0o644
    credits = (tmp_path / "CREDITS.md").read_text()
    assert "singularity-music 1.0-1" in credits and "CC-BY-SA-3.0" in credits and '"a"' in credits
    # Complete: a second fetch needs no package at all.
    (tmp_path / "downloads" / "singularity-music_1.0-1_all.deb").unlink()
    assert fetch_soundtracks(tmp_path, entries, apt_get=None)["fetched"] == 0


def test_a_deleted_file_is_re_extracted_and_re_verified_alone(tmp_path, package):
    files, entries = package
    _place(tmp_path, files)
    fetch_soundtracks(tmp_path, entries, apt_get=None)
    tracks = tmp_path / "tracks" / "singularity-music" / MUSIC
    before = {p.name: p.stat().st_mtime_ns for p in tracks.iterdir()}
    (tracks / "b.ogg").unlink()
    time.sleep(0.01)
    report = fetch_soundtracks(tmp_path, entries, apt_get=None)
    assert report["fetched"] == 1 and (tracks / "b.ogg").read_bytes() == files["b.ogg"]
    after = {p.name: p.stat().st_mtime_ns for p in tracks.iterdir()}
    assert {k: v for k, v in after.items() if k != "b.ogg"} == {k: v for k, v in before.items() if k != "b.ogg"}


def test_a_changed_file_is_replaced_from_the_package(tmp_path, package):
    files, entries = package
    _place(tmp_path, files)
    fetch_soundtracks(tmp_path, entries, apt_get=None)
    target = tmp_path / "tracks" / "singularity-music" / MUSIC / "a.ogg"
    target.write_bytes(b"not the track")
    assert fetch_soundtracks(tmp_path, entries, apt_get=None)["fetched"] == 1
    assert target.read_bytes() == files["a.ogg"]


def test_checksum_mismatch_names_the_file_and_the_version_found(tmp_path, package):
    files, entries = package
    _place(tmp_path, {**files, "a.ogg": _ogg(999, 7.0)}, version="1.0-2")  # another release of the package
    with pytest.raises(ChecksumError) as err:
        fetch_soundtracks(tmp_path, entries, apt_get=None)
    message = str(err.value)
    assert f"{MUSIC}/a.ogg" in message and "version 1.0-2" in message and "singularity-music_1.0-1_all.deb" in message
    assert not (tmp_path / "tracks" / "singularity-music" / MUSIC / "a.ogg").exists()


def test_offline_without_debs_fails_within_seconds_saying_what_to_put_where(tmp_path, package):
    _, entries = package
    start = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        fetch_soundtracks(tmp_path, entries, apt_get=None)
    assert time.perf_counter() - start < 5
    assert "singularity-music_1.0-1_all.deb" in str(err.value) and str(tmp_path / "downloads") in str(err.value)
    ok, why = soundtracks_available(tmp_path, entries, apt_get=None)
    assert not ok and "singularity-music_1.0-1_all.deb" in why


def test_fetch_calls_apt_get_download_for_a_missing_package(tmp_path, package):
    files, entries = package
    store = tmp_path / "mirror"
    store.mkdir()
    deb = _place(store, files)
    fake = tmp_path / "apt-get"
    # A stand-in for the real client: checks the arguments, "downloads" into the current folder.
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = download ] || exit 100\n'
        'for a; do last="$a"; done\n'
        f'[ "$last" = "singularity-music=1.0-1" ] || exit 101\n'
        f'cp "{deb}" .\n'
    )
    fake.chmod(0o755)
    assert soundtracks_available(tmp_path / "root", entries, apt_get=str(fake))[0]
    report = fetch_soundtracks(tmp_path / "root", entries, apt_get=str(fake))
    assert report["fetched"] == 4 and any("downloaded" in line for line in report["log"])
    assert (tmp_path / "root" / "downloads" / deb.name).is_file()


def test_a_failing_apt_get_is_reported_with_the_files_to_place(tmp_path, package):
    _, entries = package
    fake = tmp_path / "apt-get"
    fake.write_text("#!/bin/sh\necho 'E: Failed to fetch http://deb.debian.org/x  Temporary failure resolving' >&2\nexit 100\n")
    fake.chmod(0o755)
    with pytest.raises(DownloadError) as err:
        fetch_soundtracks(tmp_path, entries, apt_get=str(fake))
    assert "Temporary failure resolving" in str(err.value) and "singularity-music_1.0-1_all.deb" in str(err.value)


def test_a_path_traversal_member_is_refused_and_nothing_is_written_outside(tmp_path, package):
    files, entries = package
    root = tmp_path / "root"
    content = {f"{MUSIC}/{k}": v for k, v in files.items()} | {"../../evil.ogg": b"evil"}
    (root / "downloads").mkdir(parents=True)
    build_deb(root / "downloads" / "singularity-music_1.0-1_all.deb", "singularity-music", "1.0-1", content)
    with pytest.raises(UnsafeArchiveError, match="evil"):
        fetch_soundtracks(root, entries, apt_get=None)
    assert not list(tmp_path.rglob("evil.ogg"))
    assert not list((root / "tracks").rglob("*.ogg"))


# ----------------------------------------------------------------------------- clips


def test_make_clips_writes_the_task_manifest_and_pretraining_clips(tmp_path, package):
    files, entries = package
    _place(tmp_path, files)
    fetch_soundtracks(tmp_path, entries, apt_get=None)
    report = make_clips(tmp_path, entries, clip_seconds=2.0, workers=0)
    rows = read_manifest(tmp_path / "manifest.csv", group_column="track")
    assert {r.split for r in rows} == {"train", "valid", "test"} and {r.labels for r in rows} == {("singularity",)}
    assert collections.Counter(r.group.rsplit("/", 1)[1] for r in rows) == {"a.ogg": 3, "b.ogg": 3, "c.ogg": 2}
    info = soundfile.info(rows[0].path)
    assert (info.samplerate, info.channels, info.format) == (22050, 1, "FLAC")
    assert abs(info.duration - 2.0) < 1e-3
    unlabeled = (tmp_path / "unlabeled.csv").read_text().splitlines()[1:]
    tracks = {line.split(",")[1].rsplit("/", 1)[1] for line in unlabeled}
    assert tracks == {"a.ogg", "b.ogg", "d.ogg"}  # every track but the test one
    assert report["unlabeled_clips"] == len(unlabeled) == 4 + 3 + 2  # 7 s, 6 s, 3 s in 2 s pieces; a last piece of 1 s is half a clip: kept
    # The clips hold the track's audio: a clip of a.ogg is a 220 Hz tone.
    wave, rate = soundfile.read(rows[0].path)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * rate / len(wave) - 220) < 2
    # Nothing to redo on a second run; a stray file is removed.
    stray = tmp_path / "clips" / "singularity-music" / "stray.flac"
    stray.write_bytes(b"")
    assert make_clips(tmp_path, entries, clip_seconds=2.0, workers=0)["tracks_cut"] == 0
    assert not stray.exists()
    assert os.listdir(tmp_path / "unlabeled" / "singularity-music")


def test_make_runs_availability_check_says_why_it_falls_back(tmp_path):
    """`stages/download.py --check soundtracks` (what `make run` asks): exit 3 and the reason without
    apt-get or .deb files, exit 0 once apt-get is on the PATH."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "stages").mkdir()
    for name in ("_common.py", "download.py"):
        shutil.copy(root / "stages" / name, tmp_path / "stages" / name)
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")  # soundtracks.task and its pool
    empty = tmp_path / "bin"
    empty.mkdir()
    check = [sys.executable, str(tmp_path / "stages" / "download.py"), "--check", "soundtracks"]
    # Only PATH matters to the check; PYTHONPATH is kept so the stage imports the s3t under test.
    kept = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    done = subprocess.run(check, env={"PATH": str(empty), **kept}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "no apt-get" in done.stdout and str(tmp_path / "data" / "raw" / "soundtracks" / "downloads") in done.stdout
    (empty / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    (empty / "apt-get").chmod(0o755)
    done = subprocess.run(check, env={"PATH": str(empty), **kept}, capture_output=True, text=True, timeout=120)
    composed = yaml.safe_load((root / "params.yaml").read_text())
    section, transfer = composed["soundtracks"], composed["transfer"]
    assert section["task"] == "pool"
    packages = len({e.package for e in pool_task_entries(transfer["packages"], min_tracks=section["min_tracks"],
                                                        pool_hours=section["pool_hours"])})
    assert packages >= 15 and done.returncode == 0 and f"apt-get can fetch {packages} package(s)" in done.stdout


# ----------------------------------------------------------------------------- the transfer task


def test_the_transfer_packages_are_never_in_the_pretraining_pool():
    pool = {e.package for e in pretraining_entries(True, TRANSFER_PACKAGES)}
    assert pool and not pool & set(TRANSFER_PACKAGES)
    assert {"naev-data", "widelands-data", "asc-music"} <= pool  # the other pre-training-only packages stay
    assert {e.package for e in pretraining_entries(False, TRANSFER_PACKAGES)} == {p for p in PACKAGES if PACKAGES[p].label}
    task = transfer_entries(TRANSFER_PACKAGES)
    assert {e.package for e in task} == set(TRANSFER_PACKAGES) and all(e.split == "" for e in task)
    # Each default package has enough tracks for 5 folds by track.
    assert min(collections.Counter(e.package for e in task).values()) >= 10
    with pytest.raises(ValueError, match="task's classes"):
        transfer_entries(["flare-game", "hedgewars-data"])
    with pytest.raises(ValueError, match="not in the soundtracks index"):
        transfer_entries(["flare-game", "no-such-package"])
    with pytest.raises(ValueError, match="at least two packages"):
        transfer_entries(["flare-game"])


def test_transfer_plan_caps_clips_per_track_and_splits_each_package_by_track():
    entries = transfer_entries(TRANSFER_PACKAGES)
    plan = transfer_plan(entries, 30.0, clips_per_track=6)
    per_track = collections.Counter(c.entry.track for c in plan)
    assert max(per_track.values()) == 6 and set(per_track) == {e.track for e in entries}
    for e in entries:
        clips = sorted((c for c in plan if c.entry.track == e.track), key=lambda c: c.start_s)
        assert len(clips) == min(6, max(1, int(e.duration_s // 30)))
        assert all(b.start_s >= a.end_s for a, b in zip(clips, clips[1:]))  # disjoint
        assert all(0 <= c.start_s and c.end_s <= e.duration_s for c in clips)
        assert len({c.split for c in clips}) == 1  # a track's clips share a split
    for package in TRANSFER_PACKAGES:
        splits = collections.Counter(c.split for c in {(c.entry.track, c.split): c for c in plan
                                                        if c.entry.package == package}.values())
        assert splits["test"] >= 2 and splits["valid"] >= 2 and splits["train"] >= 6
    uncapped = transfer_plan(entries, 30.0, clips_per_track=None)
    assert len(uncapped) > len(plan)
    with pytest.raises(ValueError, match="clips_per_track"):
        transfer_plan(entries, 30.0, clips_per_track=0)


def test_make_clips_of_a_transfer_plan_labels_clips_by_package(tmp_path, package):
    import shutil

    files, entries = package
    _place(tmp_path, files)
    fetch_soundtracks(tmp_path, entries, apt_get=None)
    # The same tracks as a package without a class (flare-game): its clips are labelled by the package's name.
    shutil.copytree(tmp_path / "tracks" / "singularity-music", tmp_path / "tracks" / "flare-game")
    unlabelled = [IndexEntry(**{**e.__dict__, "package": "flare-game", "split": ""}) for e in entries]
    plan = transfer_plan(unlabelled, 2.0, clips_per_track=2)
    make_clips(tmp_path, unlabelled, clip_seconds=2.0, workers=0, plan=plan)
    rows = read_manifest(tmp_path / "manifest.csv", group_column="track")
    assert len(rows) == len(plan) == 2 + 2 + 2 + 1  # 7, 6, 4 s: two clips each; 3 s: one
    assert {r.labels for r in rows} == {("flare-game",)}
    assert {r.split for r in rows} <= {"train", "valid", "test"}
    assert not (tmp_path / "unlabeled.csv").read_text().splitlines()[1:]


def test_clips_cut_from_parts_of_a_track_equal_the_whole_tracks_samples(tmp_path, package, monkeypatch):
    # One 2 s clip of a 6-7 s track covers under half of it: the cutter decodes only that part.
    from s3t.audio import load_audio

    files, entries = package
    _place(tmp_path, files)
    fetch_soundtracks(tmp_path, entries, apt_get=None)
    shutil.copytree(tmp_path / "tracks" / "singularity-music", tmp_path / "tracks" / "flare-game")
    unlabelled = [IndexEntry(**{**e.__dict__, "package": "flare-game", "split": ""}) for e in entries]
    plan = [c for c in transfer_plan(unlabelled, 2.0, clips_per_track=1) if c.entry.duration_s >= 6.0]
    assert plan
    import s3t.audio

    parts = []
    real = s3t.audio.load_audio
    monkeypatch.setattr(s3t.audio, "load_audio", lambda *a, **k: parts.append(k.get("start_s")) or real(*a, **k))
    make_clips(tmp_path, unlabelled, clip_seconds=2.0, workers=0, plan=plan)
    assert parts == [c.start_s for c in plan]  # decoded part by part, not whole
    monkeypatch.undo()
    for clip in plan:
        whole = load_audio(tmp_path / "tracks" / "flare-game" / clip.entry.path, 22050)
        expected = whole[round(clip.start_s * 22050):round(clip.end_s * 22050)]
        written, _ = soundfile.read(tmp_path / clip.path, dtype="float32")
        # The clip is written as 16-bit FLAC: equal up to its quantisation step.
        np.testing.assert_allclose(written, expected, atol=1 / 32768 + 1e-7)
