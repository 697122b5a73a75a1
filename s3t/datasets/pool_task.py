"""The soundtrack task over Debian's music pool: more classes, a larger test split, and a
pre-training pool whose size a user picks (issue 31).

The five-class task of :mod:`s3t.datasets.soundtracks` tests on 57 clips, too few to tell recipes
apart. This module builds the same kind of task ("which package is this 30 s clip from", split by
track) from the shipped pool index (``splits/debian_pool_index.csv``, made by
:func:`s3t.datasets.debian_pool.build_pool_index`), as :class:`~s3t.datasets.soundtracks.IndexEntry`
rows that :func:`~s3t.datasets.soundtracks.fetch_soundtracks` and
:func:`~s3t.datasets.soundtracks.make_clips` take unchanged. Three disjoint roles:

* **Transfer packages** (``transfer.packages``, by default :data:`TRANSFER_PACKAGES`): kept out of
  the task and of pre-training, labelled by package, scored by cross-validation by track
  (:func:`pool_transfer_entries`, then :func:`~s3t.datasets.soundtracks.transfer_plan`).
* **Task packages**: every other package with at least ``min_tracks`` tracks of at least
  :data:`~s3t.datasets.soundtracks.TASK_MIN_SECONDS` (40 s); with the default 12 that is 15
  packages and 353 task tracks; its 70 test tracks give 193 test clips (3 per track of 90 s or
  more, else 2). Split by track as the five-class task is
  (:func:`~s3t.datasets.soundtracks.split_tracks`: per package, sha256 order, 20 % test, 20 % valid).
* **The pre-training pool**: the tracks of the task packages that are not in the test split, then
  the tracks of every other package (neither task nor transfer), each group in sha256 order
  (a fixed pseudo-random order); ``pool_hours`` keeps the shortest prefix of that list holding at
  least that many hours (None: all of it, 21.0 h with the default transfer packages).

Choices where the issue leaves room (tested):

* Pools of different sizes are nested (the 4 h pool is inside the 12 h one), so a curve over pool
  size changes one thing. Task packages come first, so the default's pool needs no package beyond
  the task's and the transfer task's (2.6 GB of .deb files instead of 3.3 GB); the whole pool adds
  the small packages' 7 h.
* Tracks, not pieces, are the unit of the pool: a track's pieces are all in or all out.
* A task track outside the pool is still fetched and cut into task clips; any other track outside
  the pool (of another package, or a task package's track too short for the task) is not fetched.
* Class labels are the package names, except the five packages of the five-class task, which keep
  their labels there (``colobot``, ``drascula`` ...), so the rows of both tasks can be read side by side.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Sequence

from s3t.datasets.debian_pool import PoolEntry, check_usable, read_pool_index
from s3t.datasets.soundtracks import TASK_MIN_SECONDS, IndexEntry, split_tracks

__all__ = [
    "POOL_INDEX_RESOURCE",
    "TASK_MIN_TRACKS",
    "TRANSFER_PACKAGES",
    "pool_index_entries",
    "pool_task_entries",
    "pool_transfer_entries",
    "task_packages",
]

POOL_INDEX_RESOURCE = "debian_pool_index.csv"
TASK_MIN_TRACKS = 12
"""Fewest task tracks (>= 40 s) a package needs to be a class: 20 % test of 12 gives 2 test tracks."""

TRANSFER_PACKAGES = ("flare-game", "pushover-data", "starfighter-data")
"""The pool task's default transfer packages: three of the four packages with 10 or 11 tracks (each
at least 10 for 5 folds, too few to be a class), 32 tracks and 1.6 h; planetblupi-music-ogg, the
fourth, is left to pre-training because it holds 2.7 h."""


def pool_index_entries(path: str | os.PathLike[str] | None = None) -> list[IndexEntry]:
    """The pool index (the shipped one, or the CSV at ``path``) as index entries with no split.

    Raises:
        PoolIndexError: a malformed index. ReservedPackageError: a row naming a reserved package or file.
    """
    if path is None:
        with resources.as_file(resources.files(__package__).joinpath("splits", POOL_INDEX_RESOURCE)) as shipped:
            pool = read_pool_index(shipped)
    else:
        pool = read_pool_index(path)
    return [_as_index_entry(e) for e in pool]


def _as_index_entry(e: PoolEntry) -> IndexEntry:
    return IndexEntry(e.package, e.version, e.member, e.sha256, e.duration_s, e.licence, e.title, "")


def task_packages(entries: Sequence[IndexEntry], transfer_packages: Sequence[str],
                  min_tracks: int = TASK_MIN_TRACKS) -> list[str]:
    """The packages of ``entries`` outside ``transfer_packages`` with at least ``min_tracks`` tracks
    of at least 40 s, sorted by name."""
    counts: dict[str, int] = {}
    for e in entries:
        if e.package not in transfer_packages and e.duration_s >= TASK_MIN_SECONDS:
            counts[e.package] = counts.get(e.package, 0) + 1
    return sorted(p for p, n in counts.items() if n >= min_tracks)


def _check_transfer(packages: Sequence[str], known: set[str], tasks: Sequence[str]) -> None:
    for package in packages:
        check_usable(package, where="transfer.packages")
    unknown = sorted(set(packages) - known)
    if unknown:
        raise ValueError(f"transfer.packages names {unknown}, not in the pool index; choose among "
                         f"{sorted(known - set(tasks))}")
    if len(set(packages)) < 2:
        raise ValueError(f"the transfer task needs at least two packages (classes), got {list(packages)}")


def pool_task_entries(
    transfer_packages: Sequence[str] = TRANSFER_PACKAGES,
    *,
    min_tracks: int = TASK_MIN_TRACKS,
    pool_hours: float | None = None,
    path: str | os.PathLike[str] | None = None,
) -> list[IndexEntry]:
    """The entries of the pool task's dataset (module docstring): every track of the task packages
    with its split, and the pre-training pool's tracks of other packages (split ``""``); an entry's
    ``pretrain`` says whether its pieces are pre-training clips.

    Raises:
        ValueError: ``min_tracks`` under 2, a negative ``pool_hours``, unknown transfer packages or
            fewer than two, or fewer than two task packages.
        ReservedPackageError: a reserved transfer package or index row.
    """
    if min_tracks < 2:
        raise ValueError(f"soundtracks.min_tracks must be >= 2 (a class needs a train and a test track), got {min_tracks}")
    if pool_hours is not None and pool_hours < 0:
        raise ValueError(f"soundtracks.pool_hours must be >= 0 or null (the whole pool), got {pool_hours}")
    entries = pool_index_entries(path)
    tasks = task_packages(entries, transfer_packages, min_tracks)
    _check_transfer(transfer_packages, {e.package for e in entries}, tasks)
    if len(tasks) < 2:
        raise ValueError(f"soundtracks.min_tracks={min_tracks} leaves {len(tasks)} package(s) with that many "
                         f"tracks; the task needs two classes: lower it")
    task_set, transfer_set = set(tasks), set(transfer_packages)
    split = split_tracks([e for e in entries if e.package in task_set], task_packages=task_set)
    others = [e for e in entries if e.package not in task_set | transfer_set]
    candidates = (sorted((e for e in split if e.split != "test"), key=lambda e: e.sha256)
                  + sorted(others, key=lambda e: e.sha256))
    pool: set[str] = set()
    seconds = 0.0
    for e in candidates:
        if pool_hours is not None and seconds >= pool_hours * 3600:
            break
        pool.add(e.track)
        seconds += e.duration_s
    chosen = [e for e in split if e.split or e.track in pool] + [e for e in others if e.track in pool]
    return [IndexEntry(**{**e.__dict__, "pretrain": e.track in pool}) for e in chosen]


def pool_transfer_entries(
    packages: Sequence[str] = TRANSFER_PACKAGES, *, path: str | os.PathLike[str] | None = None
) -> list[IndexEntry]:
    """The pool index's entries of the transfer ``packages`` (at least two, each in the pool).
    :func:`pool_task_entries` given the same ``packages`` leaves them out of the task and the pool.

    Raises:
        ValueError: an unknown package, or fewer than two. ReservedPackageError: a reserved one.
    """
    entries = pool_index_entries(path)
    _check_transfer(packages, {e.package for e in entries}, task_packages(entries, packages))
    return [e for e in entries if e.package in set(packages)]
