"""Free game soundtracks packaged by Debian: real music for pre-training and a labeled task.

Why this dataset exists: GTZAN, FMA and MagnaTagATune cannot be downloaded everywhere, and a
pipeline that has only heard generated MIDI cannot tell whether S3T learns anything about
recorded music. Debian's archive carries freely licensed game soundtracks that any machine
with ``apt-get`` can fetch by name, at a fixed version, with the licence beside the music.

What it provides (paper Section 3.1 evaluates on genre and tagging datasets; this is the
same protocol on a task we can build here):

* **The task** "which soundtrack is this 30 s clip from": one class per package, a composer /
  album identification task (a standard MIR task shape). 2 or 3 clips per track from different
  positions; the split is **by track** (no track in two splits), shipped in the index.
* **Unlabeled pre-training audio**: every indexed track that is not in the task's test split,
  cut into consecutive clips. No test track is ever cut into pre-training clips.

Identity (like mirdata's indexes): ``splits/soundtracks_index.csv`` ships with the package and
lists every music file used: package, version, path inside the package, sha256, duration,
licence, title and the track's task split. Each extracted file is verified against it; a
mismatch names the file and the package version found.

Layout under the dataset root (what :func:`fetch_soundtracks` and :func:`make_clips` write)::

    downloads/<package>_<version>_all.deb     fetched by `apt-get download`, or placed by hand
    tracks/<package>/<path in package>        the indexed music files, verified
    tracks/.verified.json                     size/mtime/sha256 of each verified file
    clips/<package>/<clip>.flac               task clips, 22.05 kHz mono FLAC
    unlabeled/<package>/<clip>.flac           pre-training clips (tracks not in the test split)
    manifest.csv                              the task: path,label,split,track,start_s,end_s
    unlabeled.csv                             the pre-training clips: path,track,start_s,end_s
    CREDITS.md                                attribution, as CC-BY-SA and GPL ask

Choices where nothing prescribes one (documented, tested):

* Packages: five of the issue's list, each with at least 15 music tracks, chosen for the
  smallest download that gives five classes (522 MB, 5 h 20 min of music): colobot-common-sounds,
  drascula-music, freedroidrpg-data, hedgewars-data, singularity-music. ufoai-music (63 tracks)
  hides its music inside a .pk3 (zip) archive and naev-data / widelands-data are 350-380 MB.
* Pre-training-only packages (``label == ""``): six more of the list, naev-data, widelands-data,
  marsshooter-data, flare-game, pushover-data and asc-music (964 MB, 5 h 55 min of music in 115
  tracks), give no class: every track of theirs is cut into pre-training clips and none is in a
  split. They are in the shipped index; ``read_index(pretraining_packages=False)`` (the pipeline's
  default, ``soundtracks.pretraining_packages``) leaves them out, since at the default's sample budget
  they did not raise the validation score (README, recipe ablation).
* Music files: only each package's music folder (game data packages also hold sound effects),
  files of at least 30 s, deduplicated by content (drascula-music links the same tracks from
  five language folders; only ``audio/`` holds regular files).
* Task tracks: tracks of at least 40 s. A track of 90 s or more gives 3 clips of 30 s, spread
  evenly with equal gaps; a shorter one gives 2, which overlap when it is under 60 s (both in
  the same split, so nothing leaks). Shorter tracks are pre-training audio only.
* Split: per package, task tracks ordered by sha256 (a fixed pseudo-random order), 20 % test,
  20 % valid (rounded), the rest train.
* Pre-training clips: consecutive 30 s pieces of every track not in the test split; a last
  piece shorter than half a clip (15 s) is dropped.
* Clips are written as 22.05 kHz mono FLAC (the paper's rate, lossless), so featurizing them
  decodes no Vorbis and resamples nothing.

**The transfer task** (:func:`transfer_plan`, the pipeline's ``transfer`` dataset): music the
encoder never heard, labelled by package, scored by cross-validation by track
(:mod:`s3t.evaluation`). Its packages (``transfer.packages``, by default three of the
pre-training-only ones: flare-game, marsshooter-data, pushover-data, 223 MB, 32 tracks, 1 h 58 min)
are taken out of the pre-training pool even with ``soundtracks.pretraining_packages``
(:func:`pretraining_entries`). Up to ``clips_per_track`` disjoint clips per track, evenly spread
(as the task's), so long tracks do not outweigh short ones; each track's split is dealt per
package in sha256 order (3 train, 1 valid, 1 test of every 5), so the set is also an ordinary
labelled dataset. Chosen for the download that :command:`make run` can afford (the six packages are
964 MB), with at least 10 tracks per package for 5 folds.

**Reserved packages** (:data:`s3t.datasets.debian_pool.RESERVED_PACKAGES`, kept for held-out checks)
are refused with :class:`~s3t.datasets.debian_pool.ReservedPackageError` before any work by every
function here that could fetch or read a package: :func:`read_index` (a row naming one),
:func:`index_package`, :func:`transfer_entries`, :func:`fetch_soundtracks` and the apt-get calls.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Collection, Iterable, Sequence

from s3t.datasets.debian_pool import check_usable, extract_members, find_pool_deb
from s3t.datasets.download import DOWNLOADS_DIR, ChecksumError, DownloadError

__all__ = [
    "INDEX_COLUMNS",
    "PACKAGES",
    "TRANSFER_PACKAGES",
    "Clip",
    "IndexEntry",
    "SoundtrackPackage",
    "clip_plan",
    "fetch_soundtracks",
    "index_package",
    "make_clips",
    "pretraining_entries",
    "read_index",
    "soundtracks_available",
    "split_tracks",
    "transfer_entries",
    "transfer_plan",
    "write_credits",
    "write_index",
]


@dataclass(frozen=True)
class SoundtrackPackage:
    """One Debian package of the dataset: its class label, where its music lies, its licence."""

    name: str
    label: str  # the task's class; "" for a package that gives pre-training audio only
    music_dirs: tuple[str, ...]  # package paths whose audio files (any depth) are music
    licence: str  # of the music, from the package's own copyright file
    copyright: str  # holders named there
    homepage: str


PACKAGES: dict[str, SoundtrackPackage] = {
    p.name: p
    for p in (
        SoundtrackPackage(
            "colobot-common-sounds", "colobot", ("usr/share/games/colobot/music",), "GPL-3+",
            "2001-2016 Daniel Roux, EPSITEC SA & TerranovaTeam", "https://colobot.info",
        ),
        SoundtrackPackage(
            "drascula-music", "drascula", ("usr/share/scummvm/drascula/audio",), "Drascula-License (BSD-like)",
            "1996-2008 Alcachofa Soft S.L.", "https://www.scummvm.org",
        ),
        SoundtrackPackage(
            "freedroidrpg-data", "freedroidrpg", ("usr/share/freedroidrpg/data/sound/music",), "GPL-2+",
            "the FreedroidRPG team (see the package's copyright file)", "https://www.freedroid.org",
        ),
        SoundtrackPackage(
            "hedgewars-data", "hedgewars", ("usr/share/games/hedgewars/Data/Music",), "GPL-2",
            "2004-2018 Andrey Korotaev, Igor Ulyanov, the Hedgewars Project (composers in Data/Music/credits.txt)",
            "https://hedgewars.org",
        ),
        SoundtrackPackage(
            "singularity-music", "singularity", ("usr/share/games/singularity/music",), "CC-BY-SA-3.0",
            "2007-2008, 2012 Max McCracken", "https://github.com/singularity/singularity",
        ),
        # Pre-training audio only (no class): every track is cut into unlabeled clips.
        SoundtrackPackage(
            "naev-data", "", ("usr/share/naev/dat/snd/music",),
            "per track: GPL-2+ / GPL-3 or CC-BY-3.0 / CC-BY-3.0 / CC-BY-SA-3.0 / public domain",
            "Vega Strike, Nikola Whallon, Zeropage, Askyel and others (per track in the package's copyright file)",
            "https://naev.org",
        ),
        SoundtrackPackage(
            "widelands-data", "", ("usr/share/games/widelands/data/music",), "GPL-2+ (ingame_24-26: CC-BY-SA-3.0)",
            "2002-2019 the Widelands Development Team; ingame_24-26 Stuart Marshall", "https://www.widelands.org",
        ),
        SoundtrackPackage(
            "marsshooter-data", "", ("usr/share/games/marsshooter/audio/music",), "CC-BY-SA-3.0",
            "2011 Obsidian Shell", "https://github.com/thelaui/M.A.R.S.",
        ),
        SoundtrackPackage(
            "flare-game", "", ("usr/share/games/flare/mods/fantasycore/music",), "CC-BY-SA-3.0+",
            "2012-2021 Clint Bellanger and others", "https://flarerpg.org",
        ),
        SoundtrackPackage(
            "pushover-data", "", ("usr/share/pushover/themes",), "GPL-3+",
            "2008-2018 Roberto Lorenz (music composition and arrangement)", "https://github.com/pushover/pushover.github.io",
        ),
        SoundtrackPackage(
            "asc-music", "", ("usr/share/games/asc/music",), "GPL-2+", "2002 Michael Kievernagel", "http://www.asc-hq.de",
        ),
    )
}
"""The packages of the dataset, by Debian package name."""

INDEX_COLUMNS = ("package", "version", "path", "sha256", "duration_s", "licence", "title", "split")
"""Columns of the shipped index; ``split`` is the track's task split, or ``""`` (pre-training only)."""

INDEX_RESOURCE = "soundtracks_index.csv"
CLIP_SECONDS = 30.0
TASK_MIN_SECONDS = 40.0
TEST_FRACTION = 0.2
VALID_FRACTION = 0.2
_VERIFIED = ".verified.json"


@dataclass(frozen=True)
class IndexEntry:
    """One music file of the dataset, as the shipped index lists it."""

    package: str
    version: str
    path: str  # inside the package, e.g. usr/share/games/hedgewars/Data/Music/City.ogg
    sha256: str
    duration_s: float  # up to the last sound above -60 dBFS (trailing silence excluded)
    licence: str
    title: str
    split: str  # train / valid / test for task tracks, "" for pre-training-only tracks
    # Whether the track's pieces outside the test split are pre-training clips (the pool task's
    # pool_hours leaves some task tracks out of pre-training; s3t.datasets.pool_task).
    pretrain: bool = True

    @property
    def track(self) -> str:
        """The track's id: ``<package>/<path in package>``, the manifest's group column."""
        return f"{self.package}/{self.path}"

    @property
    def deb_name(self) -> str:
        return f"{self.package}_{self.version}_all.deb"


@dataclass(frozen=True)
class Clip:
    """A piece ``[start_s, end_s)`` of a track, written to ``path`` (relative to the dataset root)."""

    entry: IndexEntry
    path: str
    start_s: float
    end_s: float
    split: str  # train / valid / test (task) or "unlabeled" (pre-training)


# ----------------------------------------------------------------------------- the index


def read_index(path: str | os.PathLike[str] | None = None, *, pretraining_packages: bool = True) -> list[IndexEntry]:
    """The shipped index (``s3t/datasets/splits/soundtracks_index.csv``), or the one at ``path``;
    without the packages that have no class (pre-training audio only) unless ``pretraining_packages``."""
    if path is None:
        text = resources.files(__package__).joinpath("splits", INDEX_RESOURCE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
        raise ValueError(f"soundtracks index must have the columns {','.join(INDEX_COLUMNS)}, got {reader.fieldnames}")
    rows = []
    for row in reader:
        # Refused, not dropped: an index naming a reserved package was made against the rules.
        check_usable(row["package"], row["path"], where=f"{path or INDEX_RESOURCE} line {reader.line_num}")
        rows.append(row)
    entries = [IndexEntry(**{**row, "duration_s": float(row["duration_s"])}) for row in rows]
    if not pretraining_packages:
        entries = [e for e in entries if e.package not in PACKAGES or PACKAGES[e.package].label]
    return entries


def write_index(entries: Iterable[IndexEntry], path: str | os.PathLike[str]) -> None:
    """Write an index CSV (the format :func:`read_index` reads)."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INDEX_COLUMNS)
        for e in entries:
            writer.writerow([e.package, e.version, e.path, e.sha256, f"{e.duration_s:.3f}", e.licence, e.title, e.split])


def _audible_seconds(path: Path, floor: float = 1e-3) -> float:
    """Seconds up to the last sample above ``floor`` (-60 dBFS): some tracks are short jingles
    padded with a minute of digital silence, whose clips would be silent."""
    import numpy as np
    import soundfile

    wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    loud = np.flatnonzero(np.abs(wave).max(axis=1) > floor)
    return (int(loud[-1]) + 1) / rate if loud.size else 0.0


def index_package(tree: str | os.PathLike[str], package: str, version: str) -> list[IndexEntry]:
    """Index entries (split ``""``) for the music of ``package`` extracted at ``tree`` (e.g. by
    ``dpkg -x``): regular audio files under its music folders, at least 30 s long up to their last
    sound above -60 dBFS (``duration_s``), deduplicated
    by sha256 (the first path in sorted order is kept). How the shipped index was made::

        for p in PACKAGES: apt-get download p; dpkg -x p_*.deb tree/p
        write_index(split_tracks([e for p in PACKAGES for e in index_package(f"tree/{p}", p, version)]), path)
    """

    from s3t.audio import AUDIO_EXTENSIONS

    check_usable(package)
    info, tree = PACKAGES[package], Path(tree)
    entries: list[IndexEntry] = []
    seen: set[str] = set()
    for folder in info.music_dirs:
        for path in sorted((tree / folder).rglob("*")):
            # Symlinks are skipped: packages link one track from several folders.
            if path.is_symlink() or not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            duration = _audible_seconds(path)
            digest = _sha256(path)
            if duration < CLIP_SECONDS or digest in seen:
                continue
            seen.add(digest)
            rel = path.relative_to(tree).as_posix()
            entries.append(IndexEntry(package, version, rel, digest, round(duration, 3), info.licence, path.stem, ""))
    return entries


def split_tracks(entries: Sequence[IndexEntry], task_packages: Collection[str] | None = None) -> list[IndexEntry]:
    """Assign each track its task split (see the module docstring); returns new entries, same order.

    Per package with a class (one of ``task_packages``; None: every package but those of
    :data:`PACKAGES` without a label): tracks of at least :data:`TASK_MIN_SECONDS` ordered by sha256, the
    first ``round(0.2 n)`` test, the next ``round(0.2 n)`` valid, the rest train; shorter tracks,
    and every track of a package without a class, get ``""`` (pre-training only).
    """
    splits: dict[str, str] = {}
    for package in sorted({e.package for e in entries}):
        has_class = package in task_packages if task_packages is not None else PACKAGES.get(package, _UNLISTED).label
        if not has_class:
            continue
        task = sorted((e for e in entries if e.package == package and e.duration_s >= TASK_MIN_SECONDS), key=lambda e: e.sha256)
        n_test, n_valid = round(TEST_FRACTION * len(task)), round(VALID_FRACTION * len(task))
        for i, e in enumerate(task):
            splits[e.track] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return [IndexEntry(**{**e.__dict__, "split": splits.get(e.track, "")}) for e in entries]


# A package missing from PACKAGES has a class (its name) unless task_packages says otherwise.
_UNLISTED = SoundtrackPackage("", "unlisted", (), "", "", "")

TRANSFER_PACKAGES = ("flare-game", "marsshooter-data", "pushover-data")
"""The transfer task's packages in the default pipeline (``transfer.packages``)."""


def transfer_entries(packages: Sequence[str], path: str | os.PathLike[str] | None = None) -> list[IndexEntry]:
    """The index entries of the transfer task's ``packages``, which must be packages of the index
    without a class (a task package's music is pre-training audio and task clips already).

    Raises:
        ReservedPackageError: a reserved package (``-S 'transfer.packages=[0ad-data]'``).
        ValueError: an unknown package, a task package, or fewer than two packages (one class).
    """
    for package in packages:
        check_usable(package, where="transfer.packages")
    entries = read_index(path)
    known = {e.package for e in entries}
    unknown = sorted(set(packages) - known)
    if unknown:
        raise ValueError(f"transfer.packages names {unknown}, not in the soundtracks index; choose among "
                         f"{sorted(p for p in known if not (p in PACKAGES and PACKAGES[p].label))}")
    labelled = sorted(p for p in packages if p in PACKAGES and PACKAGES[p].label)
    if labelled:
        raise ValueError(f"transfer.packages names {labelled}, which are the task's classes (heard in pre-training)")
    if len(set(packages)) < 2:
        raise ValueError(f"the transfer task needs at least two packages (classes), got {list(packages)}")
    return [e for e in entries if e.package in set(packages)]


def pretraining_entries(pretraining_packages: bool, transfer_packages: Sequence[str],
                        path: str | os.PathLike[str] | None = None) -> list[IndexEntry]:
    """The soundtracks dataset's entries (:func:`read_index`) without the transfer task's packages,
    so that no encoder pre-trained here has heard the music it is scored on by transfer."""
    return [e for e in read_index(path, pretraining_packages=pretraining_packages) if e.package not in set(transfer_packages)]


def transfer_plan(entries: Sequence[IndexEntry], clip_seconds: float = CLIP_SECONDS,
                  clips_per_track: int | None = 6) -> list[Clip]:
    """The transfer task's clips (see the module docstring): per track, ``n = min(clips_per_track,
    duration // clip_seconds)`` (at least 1; None: no cap) disjoint clips with equal gaps, in the
    track's split."""
    if clips_per_track is not None and clips_per_track < 1:
        raise ValueError(f"clips_per_track must be >= 1 or null, got {clips_per_track}")
    split_of: dict[str, str] = {}
    for package in sorted({e.package for e in entries}):
        tracks = sorted((e for e in entries if e.package == package), key=lambda e: e.sha256)
        for i, e in enumerate(tracks):
            split_of[e.track] = ("train", "train", "train", "valid", "test")[i % 5]
    clips = []
    stems = _stems(entries, str)
    for e in entries:
        d, stem = e.duration_s, stems[e.track]
        n = max(1, int(d // clip_seconds))
        n = n if clips_per_track is None else min(n, clips_per_track)
        spare = max(0.0, d - n * clip_seconds)
        for i in range(n):
            start = round(i * clip_seconds + spare * (i + 0.5) / n, 3)
            end = min(d, start + clip_seconds)
            clips.append(Clip(e, f"clips/{e.package}/{stem}--{_span(start, end)}.flac", start, end, split_of[e.track]))
    return clips


# ----------------------------------------------------------------------------- fetching


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _packages(entries: Sequence[IndexEntry]) -> dict[str, str]:
    """package -> version, refusing an index that names two versions of one package."""
    versions: dict[str, str] = {}
    for e in entries:
        if versions.setdefault(e.package, e.version) != e.version:
            raise ValueError(f"the index names two versions of {e.package}: {versions[e.package]} and {e.version}")
    return versions


def _find_deb(downloads: Path, package: str, version: str) -> Path | None:
    """The .deb of ``package`` in ``downloads``: the indexed version's file first
    (:func:`s3t.datasets.debian_pool.find_pool_deb`), else any version."""
    exact = find_pool_deb(downloads, package, version)
    if exact is not None:
        return exact
    other = sorted(downloads.glob(f"{package}_*.deb"))
    return other[0] if other else None


def soundtracks_available(
    root: str | os.PathLike[str], entries: Sequence[IndexEntry] | None = None, *, apt_get: str | None = "apt-get"
) -> tuple[bool, str]:
    """Whether :func:`fetch_soundtracks` can work here, and why not: every .deb is in
    ``<root>/downloads/`` already, or ``apt_get`` is on the PATH. Looks, fetches nothing."""
    entries = read_index() if entries is None else entries
    downloads = Path(root) / DOWNLOADS_DIR
    missing = [f"{p}_{v}_all.deb" for p, v in _packages(entries).items() if _find_deb(downloads, p, v) is None]
    if not missing:
        return True, f"every package is in {downloads}"
    if apt_get and shutil.which(apt_get):
        return True, f"{apt_get} can fetch {len(missing)} package(s)"
    return False, (
        f"no {apt_get or 'apt-get'} on this machine and {len(missing)} package(s) not in {downloads}: {', '.join(missing)}"
    )


def _apt_download(apt_get: str, package: str, version: str, downloads: Path, timeout: float) -> str:
    """Run ``apt-get download package=version`` in ``downloads``; returns "" or why it failed.
    A reserved package raises ReservedPackageError before apt-get is called."""
    check_usable(package)
    command = [apt_get, "download", "-o", "Acquire::Retries=0", "-o", f"Acquire::http::Timeout={int(timeout)}",
               f"{package}={version}"]
    try:
        done = subprocess.run(command, cwd=downloads, capture_output=True, text=True, timeout=timeout * 3)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{' '.join(command)}: {err}"
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.startswith(("E:", "Err"))]
        return f"{' '.join(command)} exited {done.returncode}: {' '.join(lines[-2:]) or done.stderr.strip()[-200:]}"
    return ""


def _obtain_debs(
    entries: Sequence[IndexEntry], downloads: Path, apt_get: str | None, timeout: float, log: list[str]
) -> dict[str, Path]:
    """package -> .deb path, fetched with apt-get where missing; one error listing every gap.
    Every entry is checked against the reserved list before anything is looked up or fetched."""
    for e in entries:
        check_usable(e.package, e.path)
    downloads.mkdir(parents=True, exist_ok=True)
    debs: dict[str, Path] = {}
    failures: list[str] = []
    have_apt = bool(apt_get and shutil.which(apt_get))
    for package, version in _packages(entries).items():
        deb = _find_deb(downloads, package, version)
        if deb is None and have_apt:
            reason = _apt_download(apt_get, package, version, downloads, timeout)
            deb = _find_deb(downloads, package, version)
            if deb is None:
                failures.append(f"{package}_{version}_all.deb ({reason or 'apt-get wrote no file'})")
                continue
            log.append(f"downloaded {deb.name}")
        elif deb is None:
            failures.append(f"{package}_{version}_all.deb")
            continue
        debs[package] = deb
    if failures:
        how = "apt-get could not fetch them" if have_apt else f"there is no {apt_get or 'apt-get'} on this machine"
        raise DownloadError(
            f"{how}. Put these Debian packages in {downloads} (on any Debian 12 machine: "
            f"`apt-get download NAME=VERSION`, or from https://packages.debian.org), then run again:\n  "
            + "\n  ".join(failures)
        )
    return debs


def _load_verified(tracks: Path) -> dict[str, list]:
    try:
        record = json.loads((tracks / _VERIFIED).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _stamp(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _extract_package(job: tuple[Path, Path, list[IndexEntry]]) -> dict[str, list]:
    """Extract the ``wanted`` files of one .deb into ``tracks/<package>/``, each verified against the
    index (worker process of :func:`fetch_soundtracks`). Returns track -> its verification record."""
    from s3t.datasets.debian import deb_info

    deb, tracks, wanted = job
    package = wanted[0].package
    staging = tracks / f".extract-{package}"
    shutil.rmtree(staging, ignore_errors=True)
    records: dict[str, list] = {}
    try:
        found = deb_info(deb)
        written = extract_members(deb, [e.path for e in wanted], staging)
        for e in wanted:
            actual = _sha256(written[e.path])
            if actual != e.sha256:
                raise ChecksumError(
                    f"{e.path} from {deb.name} (package {found.package} version {found.version}) has sha256 "
                    f"{actual}, but the index of version {e.version} expects {e.sha256}. Put "
                    f"{e.deb_name} in {deb.parent} (and remove {deb.name}), then run again."
                )
            target = tracks / e.package / e.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(written[e.path], target)
            records[e.track] = [*_stamp(target), e.sha256]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return records


def fetch_soundtracks(
    root: str | os.PathLike[str],
    entries: Sequence[IndexEntry] | None = None,
    *,
    apt_get: str | None = "apt-get",
    timeout: float = 20.0,
    workers: int = 2,
) -> dict[str, object]:
    """Make ``<root>/tracks/`` hold every indexed music file, verified; fetch only what is missing.

    Steps: (1) each file already in ``tracks/`` whose size and mtime match the record of an
    earlier verification is kept without re-hashing; others are hashed and kept when they match
    the index. (2) For packages with files still missing, the .deb is taken from
    ``<root>/downloads/`` (placed by hand, or fetched there with ``apt_get download
    NAME=VERSION``), and only the missing music files are extracted
    (:func:`s3t.datasets.debian.extract_deb_members`: nothing outside the target) and verified.
    (3) ``CREDITS.md`` is written.

    Args:
        root: the dataset root.
        entries: the index (default: the shipped one).
        apt_get: the apt client to call, or None never to call one.
        timeout: seconds for apt-get's connections (the call itself may take three times this).
        workers: processes extracting packages side by side (0: in this process); decompressing
            ``data.tar.xz`` takes one core per package.

    Returns:
        counts and seconds per phase, for the stage's log.

    Raises:
        DownloadError: packages are missing and cannot be fetched: the message lists the files
            to place and where.
        ChecksumError: an extracted file differs from the index; the message names the file, the
            .deb and the version it holds.
        DebError / UnsafeArchiveError: a .deb is unreadable or has a dangerous member.
        ReservedPackageError: an entry names a reserved package or file; nothing is read or written.
    """
    entries = read_index() if entries is None else list(entries)
    for e in entries:
        check_usable(e.package, e.path)
    root = Path(root).resolve()
    tracks = root / "tracks"
    tracks.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    log: list[str] = []

    start = time.perf_counter()
    verified = _load_verified(tracks)
    missing: list[IndexEntry] = []
    for e in entries:
        target = tracks / e.package / e.path
        if not target.is_file():
            missing.append(e)
        elif verified.get(e.track) == [*_stamp(target), e.sha256]:
            continue
        elif _sha256(target) == e.sha256:
            verified[e.track] = [*_stamp(target), e.sha256]
        else:
            # A changed file is replaced from the package (it was never ours to keep).
            target.unlink()
            missing.append(e)
    times["verify_s"] = time.perf_counter() - start

    start = time.perf_counter()
    debs = _obtain_debs(missing, root / DOWNLOADS_DIR, apt_get, timeout, log) if missing else {}
    times["download_s"] = time.perf_counter() - start

    start = time.perf_counter()
    # Largest package first, so that the processes finish together.
    jobs = sorted(((deb, tracks, [e for e in missing if e.package == package]) for package, deb in debs.items()),
                  key=lambda job: -job[0].stat().st_size)
    if workers > 0 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = list(pool.map(_extract_package, jobs))
    else:
        records = [_extract_package(job) for job in jobs]
    for (deb, _, wanted), record in zip(jobs, records):
        verified.update(record)
        log.append(f"extracted {len(wanted)} file(s) of {deb.name}")
    tmp = tracks / f"{_VERIFIED}.tmp"
    tmp.write_text(json.dumps(verified, indent=0, sort_keys=True), encoding="utf-8")
    os.replace(tmp, tracks / _VERIFIED)
    write_credits(entries, root / "CREDITS.md")
    times["extract_s"] = time.perf_counter() - start
    return {"files": len(entries), "fetched": len(missing), "log": log, **{k: round(v, 2) for k, v in times.items()}}


def write_credits(entries: Sequence[IndexEntry], path: str | os.PathLike[str]) -> None:
    """Attribution for every indexed track, grouped by package (as CC-BY-SA and the GPL ask)."""
    lines = [
        "# Credits: music of the `soundtracks` dataset", "",
        "Free game soundtracks from Debian packages, used unmodified except for cutting into clips and resampling.",
        "Each package's full licence text is in its `usr/share/doc/<package>/copyright` file.", "",
    ]
    for package, version in _packages(entries).items():
        info = PACKAGES.get(package)
        own = [e for e in entries if e.package == package]
        lines += [f"## {package} {version}", ""]
        if info is not None:
            lines += [f"- Copyright: {info.copyright}", f"- Licence: {info.licence}", f"- Home page: {info.homepage}"]
        # Without a package record (the pool's packages), each track's licence from the index.
        lines += [f"- Tracks ({len(own)}): " + "; ".join(f"\"{e.title}\"" + ("" if info else f" ({e.licence})") for e in own), ""]
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- clips


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part) or "track"


def _span(start_s: float, end_s: float) -> str:
    # The position is in the name, so a clip on disk is the clip the plan wants (resume-safe).
    return f"{round(start_s * 1000):07d}-{round(end_s * 1000):07d}ms"


def _clip_prefix(package: str) -> str:
    """Clip names start with the class label, or the package name where there is none."""
    info = PACKAGES.get(package)
    return info.label if info is not None and info.label else package


def _stems(entries: Sequence[IndexEntry], prefix) -> dict[str, str]:
    """track -> the stem of its clips' names, ``<prefix>--<title>``; where two tracks of a package
    share a title (hyperrogue-music has two "Living Caves"), ``-<sha256[:8]>`` follows the title, so
    no two tracks' clips share a name."""
    stems = {e.track: f"{prefix(e.package)}--{_slug(e.title)}" for e in entries}
    repeated = {stem for stem, n in collections.Counter(stems.values()).items() if n > 1}
    return {e.track: f"{stems[e.track]}-{e.sha256[:8]}" if stems[e.track] in repeated else stems[e.track] for e in entries}


def clip_plan(entries: Sequence[IndexEntry], clip_seconds: float = CLIP_SECONDS) -> list[Clip]:
    """Every clip of the dataset: task clips of the train/valid/test tracks, and pre-training
    clips of every track not in the test split (see the module docstring for the positions)."""
    clips: list[Clip] = []
    stems = _stems(entries, _clip_prefix)
    for e in entries:
        d, stem = e.duration_s, stems[e.track]
        if e.split:
            n = 3 if d >= 3 * clip_seconds else 2
            spare = d - n * clip_seconds
            if spare >= 0:  # n disjoint clips with equal gaps before, between and after
                starts = [i * clip_seconds + spare * (i + 0.5) / n for i in range(n)]
            else:  # too short for disjoint clips: from the start and from the end
                starts = [max(0.0, (d - clip_seconds) * i / (n - 1)) for i in range(n)]
            for s in (round(s, 3) for s in starts):
                end = min(d, s + clip_seconds)
                clips.append(Clip(e, f"clips/{e.package}/{stem}--{_span(s, end)}.flac", s, end, e.split))
        if e.split != "test" and e.pretrain:
            k = 0
            while k * clip_seconds < d:
                s, end = k * clip_seconds, min(d, (k + 1) * clip_seconds)
                if end - s >= clip_seconds / 2 or k == 0:
                    clips.append(Clip(e, f"unlabeled/{e.package}/{stem}--{_span(s, end)}.flac", s, end, "unlabeled"))
                k += 1
    return clips


def _cut_track(job: tuple[str, list[tuple[str, float, float]], int]) -> tuple[str, str]:
    """Decode one track and write its clips (worker process). Returns (track path, error or "").

    A track whose clips cover most of it (a pre-training track) is decoded once whole; one that
    gives only its two or three task clips is decoded clip by clip (``load_audio``'s parts, which
    equal the same samples of the whole track), which skips most of a long track's decoding."""
    import soundfile

    from s3t.audio import AudioError, load_audio

    source, pieces, sample_rate = job
    covered = sum(end - start for _, start, end in pieces)
    try:
        duration = soundfile.info(source).duration
    except soundfile.SoundFileError:  # a format only PyAV reads: decoded whole
        duration = 0.0
    try:
        if covered >= 0.5 * duration:
            wave = load_audio(source, sample_rate)
            waves = [wave[int(round(start * sample_rate)):int(round(end * sample_rate))] for _, start, end in pieces]
        else:
            # A quiet clip of a loud track is the featurizer's to judge, as when it is cut from the whole.
            waves = [load_audio(source, sample_rate, silence_threshold=0.0, start_s=start, end_s=end)
                     for _, start, end in pieces]
    except AudioError as err:
        return source, err.reason
    for (out, _, _), piece in zip(pieces, waves):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{out}.tmp.flac"
        soundfile.write(tmp, piece, sample_rate, subtype="PCM_16")
        os.replace(tmp, out)
    return source, ""


def make_clips(
    root: str | os.PathLike[str],
    entries: Sequence[IndexEntry] | None = None,
    *,
    clip_seconds: float = CLIP_SECONDS,
    sample_rate: int = 22050,
    workers: int = 2,
    plan: Sequence[Clip] | None = None,
) -> dict[str, object]:
    """Cut the verified tracks in ``<root>/tracks/`` into the clips of :func:`clip_plan` (or of
    ``plan``, e.g. :func:`transfer_plan`'s), and write ``manifest.csv`` (the task, group column
    ``track``; a clip's label is its package's class, or the package's name where it has none) and
    ``unlabeled.csv``.

    Clips already on disk are kept (they are written atomically, so one that exists is whole);
    files under ``clips/`` and ``unlabeled/`` that the plan does not name are removed, so a
    changed plan leaves no stale clip behind. Each track is decoded once, in ``workers``
    processes (0: in this process).

    Returns:
        counts and seconds, for the stage's log.

    Raises:
        DownloadError: a track could not be decoded (it passed its checksum, so the decoder
            is at fault); the message names it.
    """
    from s3t.manifest import ManifestRow, write_manifest

    entries = read_index() if entries is None else list(entries)
    root = Path(root).resolve()
    start = time.perf_counter()
    plan = clip_plan(entries, clip_seconds) if plan is None else list(plan)
    wanted = {str(root / c.path) for c in plan}
    for folder in ("clips", "unlabeled"):
        for path in (root / folder).rglob("*") if (root / folder).is_dir() else ():
            if path.is_file() and str(path) not in wanted:
                path.unlink()
    jobs: dict[str, list[tuple[str, float, float]]] = {}
    for c in plan:
        if not (root / c.path).is_file():
            jobs.setdefault(str(root / "tracks" / c.entry.package / c.entry.path), []).append((str(root / c.path), c.start_s, c.end_s))
    work = [(source, pieces, sample_rate) for source, pieces in jobs.items()]
    if workers > 0 and len(work) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_cut_track, work))
    else:
        results = [_cut_track(job) for job in work]
    failed = [f"{source}: {reason}" for source, reason in results if reason]
    if failed:
        raise DownloadError("could not decode verified tracks (is libsndfile built with Vorbis?):\n  " + "\n  ".join(failed))

    task = [c for c in plan if c.split != "unlabeled"]
    rows = [ManifestRow(path=str(root / c.path), labels=(_clip_prefix(c.entry.package),), split=c.split, group=c.entry.track)
            for c in task]
    write_manifest(rows, root / "manifest.csv", group_column="track",
                   extra={"start_s": [f"{c.start_s:g}" for c in task], "end_s": [f"{c.end_s:g}" for c in task]})
    unlabeled = [c for c in plan if c.split == "unlabeled"]
    tmp = root / "unlabeled.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "track", "start_s", "end_s"])
        writer.writerows([c.path, c.entry.track, f"{c.start_s:g}", f"{c.end_s:g}"] for c in unlabeled)
    os.replace(tmp, root / "unlabeled.csv")
    return {
        "task_clips": len(task), "unlabeled_clips": len(unlabeled), "tracks_cut": len(work),
        "unlabeled_hours": round(sum(c.end_s - c.start_s for c in unlabeled) / 3600, 2),
        "cut_s": round(time.perf_counter() - start, 2),
    }
