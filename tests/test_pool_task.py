"""The soundtrack task over the Debian pool (s3t.datasets.pool_task): the shipped index's task and
pools, and a fetch and cut of a tiny pool in the real .deb layout (music inside a zip too)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from s3t.datasets.debian_pool import RESERVED_PACKAGES, ReservedPackageError, index_deb, write_pool_index
from s3t.datasets.pool_task import (
    TASK_MIN_TRACKS, TRANSFER_PACKAGES, pool_index_entries, pool_task_entries, pool_transfer_entries, task_packages,
)
from s3t.datasets.soundtracks import clip_plan, fetch_soundtracks, make_clips, transfer_plan
from s3t.manifest import read_manifest
from tests.test_debian_pool import DEP5, _audio, _deb, _zip

HOUR = 3600.0


def _pool_seconds(entries) -> float:
    return sum(e.duration_s for e in entries if e.pretrain and e.split != "test")


# ----------------------------------------------------------------------------- the shipped pool


def test_the_shipped_pool_gives_fifteen_classes_and_a_test_split_of_at_least_150_clips():
    entries = pool_task_entries()
    plan = clip_plan(entries)
    test = [c for c in plan if c.split == "test"]
    labels = collections.Counter(c.path.split("/")[1] for c in plan if c.split != "unlabeled")
    assert len(labels) == 15 and len(test) >= 150
    # Split by track: no track in two splits, and no test track cut into pre-training pieces.
    split_of: dict[str, set[str]] = collections.defaultdict(set)
    for c in plan:
        split_of[c.entry.track].add(c.split)
    assert all(len(s - {"unlabeled"}) <= 1 for s in split_of.values())
    assert not any({"test", "unlabeled"} <= s for s in split_of.values())
    # Every class has test, valid and train tracks.
    for package in labels:
        assert {"train", "valid", "test"} <= {e.split for e in entries if e.package == package}


def test_task_packages_are_those_with_enough_long_tracks_outside_the_transfer_task():
    entries = pool_index_entries()
    tasks = task_packages(entries, TRANSFER_PACKAGES)
    counts = collections.Counter(e.package for e in entries if e.duration_s >= 40)
    assert tasks == sorted(p for p, n in counts.items() if n >= TASK_MIN_TRACKS and p not in TRANSFER_PACKAGES)
    assert not set(tasks) & set(TRANSFER_PACKAGES)
    # Naming a task package as a transfer package takes it out of the task.
    assert "marsshooter-data" in tasks
    assert "marsshooter-data" not in task_packages(entries, ["marsshooter-data", "flare-game"])


def test_pools_are_nested_prefixes_of_at_least_their_hours_and_never_hold_test_or_transfer_tracks():
    small, medium, whole = (pool_task_entries(pool_hours=h) for h in (4.0, 12.0, None))
    pools = [{e.track for e in es if e.pretrain} for es in (small, medium, whole)]
    assert pools[0] < pools[1] < pools[2]
    assert 4 * HOUR <= _pool_seconds(small) < 4 * HOUR + 600  # one track past the mark at most
    assert 12 * HOUR <= _pool_seconds(medium) < 12 * HOUR + 600
    assert _pool_seconds(whole) > 20 * HOUR
    # The task is the same at every size; transfer packages are in none; test tracks are never pool.
    tasks = [{(e.track, e.split) for e in es if e.split} for es in (small, medium, whole)]
    assert tasks[0] == tasks[1] == tasks[2]
    for es in (small, medium, whole):
        assert not {e.package for e in es} & set(TRANSFER_PACKAGES)
        assert not any(e.pretrain and e.split == "test" for e in es)
    # The default's pool needs no package beyond the task's.
    assert {e.package for e in small} == set(task_packages(pool_index_entries(), TRANSFER_PACKAGES))


def test_the_transfer_task_is_its_packages_whole_split_by_track():
    entries = pool_transfer_entries()
    assert {e.package for e in entries} == set(TRANSFER_PACKAGES)
    everything = pool_index_entries()
    assert len(entries) == sum(e.package in TRANSFER_PACKAGES for e in everything)
    plan = transfer_plan(entries)
    for package in TRANSFER_PACKAGES:
        assert {c.split for c in plan if c.entry.package == package} == {"train", "valid", "test"}


@pytest.mark.parametrize("packages, message", [
    (["flare-game"], "at least two packages"),
    (["flare-game", "no-such-music"], "not in the pool index"),
])
def test_bad_transfer_packages_and_settings_are_refused_saying_what_to_change(packages, message):
    with pytest.raises(ValueError, match=message):
        pool_transfer_entries(packages)
    with pytest.raises(ValueError, match=message):
        pool_task_entries(packages)


def test_reserved_packages_and_bad_sizes_are_refused():
    reserved = sorted(RESERVED_PACKAGES)[0]
    with pytest.raises(ReservedPackageError):
        pool_task_entries(["flare-game", reserved])
    with pytest.raises(ReservedPackageError):
        pool_transfer_entries(["flare-game", reserved])
    with pytest.raises(ValueError, match="pool_hours must be >= 0"):
        pool_task_entries(pool_hours=-1.0)
    with pytest.raises(ValueError, match="min_tracks must be >= 2"):
        pool_task_entries(min_tracks=1)
    with pytest.raises(ValueError, match="lower it"):
        pool_task_entries(min_tracks=60)


# ----------------------------------------------------------------------------- a tiny pool, fetched and cut


def _tiny_pool(folder: Path) -> Path:
    """Four packages in the real layout (8 kHz Ogg Vorbis): two with three 41-45 s tracks each (one
    inside a .pk3), two with one 31 s track each; returns the pool CSV of their index."""
    downloads = folder / "downloads"
    downloads.mkdir(parents=True)
    doc = {"copyright": DEP5.encode()}
    specs = {
        "alpha-music": {"usr/share/games/alpha/music/a1.ogg": _audio(220, 41), "usr/share/games/alpha/music/a2.ogg": _audio(230, 42),
                        "usr/share/games/alpha/base/0music.pk3": _zip({"music/a3.ogg": _audio(240, 43)})},
        "beta-data": {f"usr/share/games/beta/music/b{i}.ogg": _audio(300 + 10 * i, 41 + i) for i in range(3)},
        "gamma-data": {"usr/share/games/gamma/music/g.ogg": _audio(400, 31)},
        "delta-data": {"usr/share/games/delta/music/d.ogg": _audio(500, 31)},
    }
    entries = []
    for package, files in specs.items():
        files = {**files, **{f"usr/share/doc/{package}/{k}": v for k, v in doc.items()}}
        entries += index_deb(_deb(downloads / f"{package}_1.0-1_all.deb", package, "1.0-1", files))
    write_pool_index(entries, folder / "pool.csv")
    return folder / "pool.csv"


def test_a_tiny_pool_is_fetched_from_debs_and_zips_and_cut_into_the_task_and_the_pool(tmp_path):
    index = _tiny_pool(tmp_path)
    entries = pool_task_entries(["gamma-data", "delta-data"], min_tracks=3, path=index)
    assert {e.package for e in entries} == {"alpha-music", "beta-data"}
    assert collections.Counter(e.split for e in entries) == {"train": 2, "valid": 2, "test": 2}
    report = fetch_soundtracks(tmp_path, entries, apt_get=None)
    assert report["fetched"] == 6
    assert (tmp_path / "tracks" / "alpha-music" / "usr/share/games/alpha/base/0music.pk3!music/a3.ogg").is_file()
    credits = (tmp_path / "CREDITS.md").read_text()
    assert "## alpha-music 1.0-1" in credits and "(GPL-2+)" in credits  # per-track licence of the index
    made = make_clips(tmp_path, entries, workers=0)
    rows = read_manifest(tmp_path / "manifest.csv")
    assert {r.labels[0] for r in rows} == {"alpha-music", "beta-data"}
    assert {r.split for r in rows} == {"train", "valid", "test"}
    # The pool: every non-test track's pieces (a 41-45 s track gives a 30 s piece and a 11-15 s rest,
    # under half a clip, so one piece each), never a test track's.
    assert made["unlabeled_clips"] == 4
    pieces = (tmp_path / "unlabeled.csv").read_text().splitlines()[1:]
    test_tracks = {e.track for e in entries if e.split == "test"}
    assert not any(line.split(",")[1] in test_tracks for line in pieces)
    # A pool of 0 h keeps the task and cuts no pre-training piece.
    none = pool_task_entries(["gamma-data", "delta-data"], min_tracks=3, pool_hours=0.0, path=index)
    assert [e.split for e in none] == [e.split for e in entries] and not any(e.pretrain for e in none)
    transfer = pool_transfer_entries(["gamma-data", "delta-data"], path=index)
    assert {e.package for e in transfer} == {"gamma-data", "delta-data"}


def test_two_tracks_of_one_package_with_one_title_get_clips_of_different_names():
    entries = pool_task_entries(pool_hours=None)
    titles = collections.Counter((e.package, e.title) for e in entries)
    assert any(n > 1 for n in titles.values())  # hyperrogue-music's two "Living Caves"
    paths = [c.path for c in clip_plan(entries)] + [c.path for c in transfer_plan(pool_transfer_entries())]
    assert len(paths) == len(set(paths))


def test_no_row_of_the_shipped_index_is_one_the_drop_rules_drop():
    from s3t.datasets.debian_pool import _dropped_by

    assert not [(e.package, e.path) for e in pool_index_entries() if _dropped_by(e.package, e.path)]
