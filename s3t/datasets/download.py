"""Fetching the evaluation datasets (paper Section 3.1): resumable, verified, atomic.

Everything here uses the standard library only (``urllib``, ``hashlib``, ``zipfile``,
``tarfile``), so fetching works wherever the library is installed.

Guarantees, and why:

- Resumable: a download is written to ``<dest>.part`` and a later call continues it with an
  HTTP ``Range`` request (multi-GB archives on flaky links).
- Verified before use: the checksum published by the well-known loaders (torchaudio, the
  FMA repository, musicnn/CLMR) is checked before ``.part`` is renamed to its final name,
  so a file under its final name has always been verified. A mismatch deletes the partial
  file and raises :class:`ChecksumError` with the expected and actual digests.
- Offline-friendly: network failures raise :class:`DownloadError` within the timeout,
  saying which file to fetch by hand, where to put it and its checksum. Archives placed by
  hand in ``<root>/downloads/`` are accepted after checksum verification.
- Atomic: archives are extracted into a temporary sibling folder that is renamed into
  place only when complete, and the completion marker ``<root>/.s3t-complete-<name>``
  (holding the checksums) is written last, after the dataset's own loader has found every
  file it needs. A second :func:`fetch_dataset` with the marker present does nothing.
- Safe extraction: :func:`safe_extract` refuses absolute paths, ``..`` components, links
  that leave the destination and device files, naming the member; and archives that would
  unpack to more than ``max_total_bytes`` (default :data:`MAX_TOTAL_BYTES`, 16 GiB), more
  than ``max_members`` members (default :data:`MAX_MEMBERS`, 10,000; MTAT's 25,863 clips get
  their own limit) or more than ``max_ratio`` (default :data:`MAX_RATIO`, 100) times the
  archive's size (a 10 GB sparse member in a 10 KB tar, a zip bomb), naming the archive. All
  of this is checked from the members' headers before anything is written. An archive that
  cannot be read to its end (truncated, corrupt) raises :class:`ArchiveError` naming the
  file, never ``tarfile``'s or ``zipfile``'s own error.

Layouts after fetching (what the loaders in :mod:`s3t.datasets` read)::

    gtzan      <root>/genres/<genre>/<genre>.000NN.wav
    fma_small  <root>/fma_metadata/tracks.csv, <root>/fma_small/NNN/NNNNNN.mp3
    mtat       <root>/annotations_final.csv, <root>/mp3/<0-f>/<file>.mp3
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from s3t.datasets import DATASET_NAMES, DatasetError
from s3t.datasets.fma import fma_manifest
from s3t.datasets.gtzan import gtzan_manifest
from s3t.datasets.mtat import mtat_manifest

DOWNLOADS_DIR = "downloads"
"""Folder under a dataset root that holds the verified archives (downloaded or placed by hand)."""

CHUNK_BYTES = 1 << 20
USER_AGENT = "s3t-datasets/0.1 (+urllib)"


class DownloadError(RuntimeError):
    """A file could not be fetched or installed; the message says what to do by hand."""


class ChecksumError(DownloadError):
    """A file's digest differs from the published one."""


MAX_TOTAL_BYTES = 16 * 2**30
"""Default most bytes :func:`safe_extract` unpacks from one archive (FMA-small: 7.7 GB)."""

MAX_MEMBERS = 10_000
"""Default most members :func:`safe_extract` unpacks from one archive (FMA-small: 8,156)."""

MAX_RATIO = 100.0
"""Default most unpacked bytes per archive byte; audio barely compresses (WAV in gzip: ~1.1)."""

_MTAT_MAX_MEMBERS = 30_000  # 25,863 clips in 16 folders


class ArchiveError(ValueError):
    """An archive that cannot be extracted: unreadable, truncated, over a limit, or unsafe."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would be written outside the destination or is not a plain file/folder/link,
    or the archive would unpack to more members or bytes than allowed."""


def _check_algo(algo: str) -> None:
    if algo not in hashlib.algorithms_guaranteed:
        raise ValueError(f"checksum algorithm {algo!r} is not one of {sorted(hashlib.algorithms_guaranteed)}")


def _new_hash(algo: str) -> "hashlib._Hash":
    _check_algo(algo)
    # md5/sha1 identify files here, they do not protect secrets (and FIPS builds need the flag).
    return hashlib.new(algo, usedforsecurity=False)


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name under ``<root>/downloads/``, mirror URLs (tried in order) and digest."""

    name: str
    urls: tuple[str, ...]
    algo: str
    checksum: str

    def __post_init__(self) -> None:
        _check_algo(self.algo)
        if not self.urls:
            raise ValueError(f"{self.name}: give at least one URL")
        if Path(self.name).name != self.name:
            raise ValueError(f"{self.name!r} must be a bare file name")


@dataclass(frozen=True)
class Install:
    """One entry a dataset needs directly under its root, made from downloaded files.

    ``sources`` name :class:`RemoteFile` objects; several are concatenated in order (MTAT's
    ``mp3.zip.001-003`` are byte-wise parts of one zip). With ``unpack`` the result is
    extracted and its folder ``archive_root`` ("" = the whole archive) becomes ``target``;
    without, the single source file is copied to ``target``.
    """

    target: str
    sources: tuple[str, ...]
    unpack: bool = True
    archive_root: str = ""
    max_members: int = MAX_MEMBERS

    def __post_init__(self) -> None:
        if not self.target or Path(self.target).name != self.target:
            raise ValueError(f"install target {self.target!r} must be a bare name directly under the dataset root")
        if not self.sources or (not self.unpack and len(self.sources) != 1):
            raise ValueError(f"{self.target}: an archive needs one or more sources, a copied file exactly one")


@dataclass(frozen=True)
class DatasetSource:
    """What :func:`fetch_dataset` needs for one dataset; ``verify(root)`` raises DatasetError if incomplete."""

    name: str
    files: tuple[RemoteFile, ...]
    installs: tuple[Install, ...]
    verify: Callable[[Path], object]

    def file(self, name: str) -> RemoteFile:
        for remote in self.files:
            if remote.name == name:
                return remote
        raise ValueError(f"{self.name}: no remote file named {name!r}")


def _verify_mtat(root: Path) -> object:
    # The directory split selects every annotated clip (minus the broken three), so it
    # checks the whole extracted tree, not only the pons2017 subset.
    return mtat_manifest(root, split="directory")


_FMA_BASE = "https://os.unil.cloud.switch.ch/fma/"
_MTAT_BASE = "https://mirg.city.ac.uk/datasets/magnatagatune/"

REGISTRY: dict[str, DatasetSource] = {
    "gtzan": DatasetSource(
        name="gtzan",
        files=(
            RemoteFile(
                "genres.tar.gz",
                (
                    "http://opihi.cs.uvic.ca/sound/genres.tar.gz",
                    # The original Marsyas tarball re-hosted; the same checksum guards it.
                    "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",
                ),
                "sha256",
                "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6",
            ),
        ),
        installs=(Install("genres", ("genres.tar.gz",), archive_root="genres"),),
        verify=gtzan_manifest,
    ),
    "fma_small": DatasetSource(
        name="fma_small",
        files=(
            RemoteFile(
                "fma_metadata.zip",
                (_FMA_BASE + "fma_metadata.zip",),
                "sha1",
                "f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
            ),
            RemoteFile(
                "fma_small.zip",
                (_FMA_BASE + "fma_small.zip",),
                "sha1",
                "ade154f733639d52e35e32f5593efe5be76c6d70",
            ),
        ),
        installs=(
            Install("fma_metadata", ("fma_metadata.zip",), archive_root="fma_metadata"),
            Install("fma_small", ("fma_small.zip",), archive_root="fma_small"),
        ),
        verify=fma_manifest,
    ),
    "mtat": DatasetSource(
        name="mtat",
        files=(
            RemoteFile("mp3.zip.001", (_MTAT_BASE + "mp3.zip.001",), "md5", "179c91c8c2a6e9b3da3d4e69d306fd3b"),
            RemoteFile("mp3.zip.002", (_MTAT_BASE + "mp3.zip.002",), "md5", "acf8265ff2e35c6ff22210e46457a824"),
            RemoteFile("mp3.zip.003", (_MTAT_BASE + "mp3.zip.003",), "md5", "582dc649cabb8cd991f09e14b99349a5"),
            RemoteFile(
                "annotations_final.csv",
                (_MTAT_BASE + "annotations_final.csv",),
                "md5",
                "f04fa01752a8cc64f6e1ca142a0fef1d",
            ),
        ),
        installs=(
            Install("annotations_final.csv", ("annotations_final.csv",), unpack=False),
            Install("mp3", ("mp3.zip.001", "mp3.zip.002", "mp3.zip.003"), max_members=_MTAT_MAX_MEMBERS),
        ),
        verify=_verify_mtat,
    ),
}
"""Remote files and layout of each dataset in :data:`s3t.datasets.DATASET_NAMES`."""


def _hash_into(hasher: "hashlib._Hash", path: Path) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            hasher.update(chunk)


def file_checksum(path: str | os.PathLike[str], algo: str) -> str:
    """Lower-case hex digest of a file."""
    hasher = _new_hash(algo)
    _hash_into(hasher, Path(path))
    return hasher.hexdigest()


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _by_hand(dest: Path, algo: str, checksum: str) -> str:
    return f"Download it by hand and place it at {dest} ({algo} {checksum}), then run again."


def download_file(
    url: str, dest: str | os.PathLike[str], checksum: str, algo: str, *, timeout: float = 10.0
) -> Path:
    """Download ``url`` to ``dest``, resuming ``<dest>.part`` and verifying the digest first.

    Args:
        url: http(s) address.
        dest: final path; the data goes to ``<dest>.part`` until verified.
        checksum: expected hex digest (case-insensitive).
        algo: ``hashlib`` name, e.g. ``"sha256"``, ``"sha1"``, ``"md5"``.
        timeout: seconds for connecting and for each read.

    Returns:
        ``dest`` as a Path.

    Raises:
        ChecksumError: the downloaded bytes do not match; ``.part`` is deleted, ``dest`` untouched.
        DownloadError: the server is unreachable, answers with an error, or the transfer
            stops; a partial ``.part`` is kept so the next call resumes.
    """
    dest = Path(dest)
    checksum = checksum.lower()
    hasher = _new_hash(algo)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            # The requested range starts at the end: the partial file may already be whole.
            _hash_into(hasher, part)
            return _finish(part, dest, url, algo, checksum, hasher.hexdigest())
        raise DownloadError(
            f"could not download {url} (HTTP {err.code} {err.reason}). {_by_hand(dest, algo, checksum)}"
        ) from err
    except OSError as err:  # URLError, refused connections, timeouts, DNS failures
        reason = getattr(err, "reason", err)
        raise DownloadError(f"could not download {url} ({reason}). {_by_hand(dest, algo, checksum)}") from err

    with response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(
                    f"{url} answered a resume from byte {offset} with Content-Range {content_range!r}; "
                    f"delete {part} and run again"
                )
            _hash_into(hasher, part)
            mode = "ab"
        else:
            # A full body: nothing to resume, or the server ignores Range requests.
            mode = "wb"
        length = response.headers.get("Content-Length")
        received = 0
        try:
            with part.open(mode) as fh:
                while chunk := response.read(CHUNK_BYTES):
                    hasher.update(chunk)
                    fh.write(chunk)
                    received += len(chunk)
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(
                f"download of {url} stopped ({err}); the partial file {part} is kept and the next run resumes it. "
                f"{_by_hand(dest, algo, checksum)}"
            ) from err
    if length is not None and length.isdigit() and received < int(length):
        raise DownloadError(
            f"{url} closed the connection after {received} of {length} bytes; the partial file {part} is kept and "
            f"the next run resumes it. {_by_hand(dest, algo, checksum)}"
        )
    return _finish(part, dest, url, algo, checksum, hasher.hexdigest())


def _finish(part: Path, dest: Path, url: str, algo: str, expected: str, actual: str) -> Path:
    if actual != expected:
        part.unlink()
        raise ChecksumError(
            f"{url} does not match its published checksum: expected {algo} {expected}, got {actual}. "
            f"The download was deleted and {dest} was not written; retry, or fetch it from another mirror by hand "
            f"and place it at {dest}."
        )
    os.replace(part, dest)
    return dest


def _check_member_name(name: str, archive: Path) -> None:
    parts = [p for p in re.split(r"[\\/]", name) if p]
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive or name.startswith("\\"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains a '..' component")


def _leaves_root(link_target: str) -> bool:
    """True when a normalized archive-relative path points above the archive root."""
    normalized = posixpath.normpath(link_target)
    return normalized == ".." or normalized.startswith("../") or posixpath.isabs(normalized)


def _under_link(name: str, links: set[str], archive: Path) -> None:
    # Writing through a link the archive itself created could land anywhere.
    parents = PurePosixPath(name).parents
    for parent in parents:
        if str(parent) in links:
            raise UnsafeArchiveError(f"{archive}: member {name!r} lies inside the link member {str(parent)!r}")


def _check_limits(archive: Path, members: int, total: int, max_members: int, max_total_bytes: int, max_ratio: float) -> None:
    """Refuse an archive unpacking to more members or bytes than allowed, or far more bytes than its size."""
    if members > max_members:
        raise UnsafeArchiveError(
            f"{archive}: {members} members, more than max_members={max_members}; nothing was written"
        )
    if total > max_total_bytes:
        raise UnsafeArchiveError(
            f"{archive}: unpacks to {total} bytes, more than max_total_bytes={max_total_bytes}; nothing was written"
        )
    size = archive.stat().st_size if archive.is_file() else 0
    if size and total > max_ratio * size:
        raise UnsafeArchiveError(
            f"{archive}: unpacks to {total} bytes, {total / size:.0f} times its own {size} bytes (more than "
            f"max_ratio={max_ratio:g}: an archive bomb or sparse files); nothing was written"
        )


def _check_tar(
    tar: tarfile.TarFile,
    archive: Path,
    *,
    max_members: int | None = None,
    max_total_bytes: int | None = None,
    max_ratio: float | None = None,
) -> None:
    links: set[str] = set()
    members = tar.getmembers()
    if max_members is not None:
        total = sum(m.size for m in members if m.isfile())
        _check_limits(archive, len(members), total, max_members, max_total_bytes, max_ratio)
    for member in members:
        name = member.name
        _check_member_name(name, archive)
        _under_link(name, links, archive)
        if member.issym():
            # A symlink's target is relative to the folder holding the link.
            resolved = posixpath.join(posixpath.dirname(name), member.linkname)
            if posixpath.isabs(member.linkname) or _leaves_root(resolved):
                raise UnsafeArchiveError(
                    f"{archive}: symlink member {name!r} points outside the destination ({member.linkname!r})"
                )
            links.add(posixpath.normpath(name))
        elif member.islnk():
            # A hard link's target is relative to the archive root.
            if posixpath.isabs(member.linkname) or _leaves_root(member.linkname):
                raise UnsafeArchiveError(
                    f"{archive}: hard-link member {name!r} points outside the destination ({member.linkname!r})"
                )
        elif member.ischr() or member.isblk() or member.isfifo():
            raise UnsafeArchiveError(f"{archive}: member {name!r} is a device or FIFO")
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {name!r} has an unsupported type {member.type!r}")


def _check_zip(
    archive_zip: zipfile.ZipFile, archive: Path, *, max_members: int, max_total_bytes: int, max_ratio: float
) -> None:
    infos = archive_zip.infolist()
    _check_limits(archive, len(infos), sum(i.file_size for i in infos), max_members, max_total_bytes, max_ratio)
    for info in infos:
        _check_member_name(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            # zipfile would write the link target as file content, never a working link.
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} is a symlink, which zip extraction cannot make safely"
            )
        # Zips written by some tools carry permission bits only (file type 0): plain files.
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device, FIFO or socket")


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
"""What tarfile, zipfile and their decompressors raise for an archive cut short or corrupt."""


def safe_extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest`` after checking every member.

    All members and the limits are checked before anything is written, so a rejected
    archive leaves ``dest`` untouched. Tar extraction additionally runs with ``tarfile``'s
    ``"data"`` filter.

    Args:
        archive: the archive file.
        dest: folder to extract into; created.
        max_total_bytes: most bytes the regular members may hold together.
        max_members: most members (files, folders, links).
        max_ratio: most bytes unpacked per byte of the archive file.

    Raises:
        UnsafeArchiveError: a member has an absolute path or a ``..`` component, is a link
            pointing outside ``dest`` (or inside another link member), a zip symlink, or a
            device/FIFO (the message names the member); or a limit is exceeded.
        ArchiveError: the archive is truncated or corrupt (the message names the file); a
            zip whose data is corrupt past its directory can fail part-way, after writing.
        ValueError: the file name does not end in ``.zip`` or a tar suffix, or a limit is not positive.
    """
    archive, dest = Path(archive), Path(dest)
    if min(max_total_bytes, max_members, max_ratio) <= 0:
        raise ValueError(
            f"max_total_bytes, max_members and max_ratio must be > 0, got {max_total_bytes}, {max_members}, {max_ratio}"
        )
    limits = {"max_members": max_members, "max_total_bytes": max_total_bytes, "max_ratio": max_ratio}
    lowered = archive.name.lower()
    try:
        if lowered.endswith(".zip"):
            with zipfile.ZipFile(archive) as archive_zip:
                _check_zip(archive_zip, archive, **limits)
                dest.mkdir(parents=True, exist_ok=True)
                archive_zip.extractall(dest)
        elif lowered.endswith(TAR_SUFFIXES):
            with tarfile.open(archive, "r:*") as tar:
                _check_tar(tar, archive, **limits)
                dest.mkdir(parents=True, exist_ok=True)
                try:
                    tar.extractall(dest, filter="data")
                except tarfile.FilterError as err:
                    raise UnsafeArchiveError(f"{archive}: {err}") from err
        else:
            raise ValueError(
                f"{archive}: cannot tell the archive type; the name must end in .zip or one of {TAR_SUFFIXES}"
            )
    except _READ_ERRORS as err:
        raise ArchiveError(
            f"{archive}: unreadable or truncated archive ({type(err).__name__}: {err}); delete it and fetch it again"
        ) from None
    return dest


def _marker_path(root: Path, name: str) -> Path:
    return root / f".s3t-complete-{name}"


def _marker_record(source: DatasetSource) -> dict[str, object]:
    return {"dataset": source.name, "files": {f.name: f"{f.algo}:{f.checksum.lower()}" for f in source.files}}


def _read_marker(marker: Path) -> object:
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        # An unreadable marker proves nothing; the caller re-checks and rewrites it.
        return None


def _obtain(remote: RemoteFile, downloads: Path, timeout: float) -> Path:
    """A verified copy of ``remote`` in ``downloads``: one placed there earlier, or a fresh download."""
    dest = downloads / remote.name
    if dest.is_file():
        actual = file_checksum(dest, remote.algo)
        if actual != remote.checksum.lower():
            raise ChecksumError(
                f"{dest} (placed by hand or left by another tool) has {remote.algo} {actual}, expected "
                f"{remote.checksum}; delete or replace it, then run again"
            )
        return dest
    failures: list[DownloadError] = []
    for url in remote.urls:
        try:
            return download_file(url, dest, remote.checksum, remote.algo, timeout=timeout)
        except DownloadError as err:
            failures.append(err)
    if len(failures) == 1:
        raise failures[0]
    kind = ChecksumError if all(isinstance(err, ChecksumError) for err in failures) else DownloadError
    listing = "\n".join(f"  - {err}" for err in failures)
    raise kind(
        f"could not fetch {remote.name} from any of its {len(failures)} addresses:\n{listing}\n"
        f"{_by_hand(dest, remote.algo, remote.checksum)}"
    ) from failures[-1]


def _concatenate(parts: list[Path], out: Path) -> Path:
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as piece:
                shutil.copyfileobj(piece, sink, CHUNK_BYTES)
    return out


def _install(install: Install, files: list[Path], root: Path) -> None:
    """Create ``root/install.target`` from verified files, renaming it into place only when complete."""
    target = root / install.target
    staging = root / f".s3t-extract-{install.target}"
    if staging.exists():
        # Left by an interrupted run; never part of a dataset.
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        if not install.unpack:
            copied = staging / install.target
            shutil.copyfile(files[0], copied)
            os.replace(copied, target)
            return
        archive = files[0] if len(files) == 1 else _concatenate(files, staging / Path(files[0].name).stem)
        tree = staging / "tree"
        safe_extract(archive, tree, max_members=install.max_members)
        extracted = tree / install.archive_root if install.archive_root else tree
        if not extracted.is_dir():
            raise DownloadError(
                f"{archive} has no folder {install.archive_root!r} at its top level; is it the published archive?"
            )
        os.replace(extracted, target)
    finally:
        shutil.rmtree(staging)


def fetch_dataset(name: str, root: str | os.PathLike[str], *, timeout: float = 10.0) -> Path:
    """Download, verify and unpack dataset ``name`` into ``root``; a no-op once complete.

    Steps: (1) if ``<root>/.s3t-complete-<name>`` records the current checksums, return at
    once; (2) for each missing entry of the layout (e.g. ``genres/``), take its archives
    from ``<root>/downloads/`` (placed by hand, verified) or download them there, then
    extract into a temporary sibling and rename into place; entries already present are
    kept; (3) run the dataset's loader to check that every file it needs is there;
    (4) write the marker.

    Returns:
        ``root`` as an absolute Path, ready for :func:`s3t.datasets.write_dataset_manifest`.

    Raises:
        DownloadError / ChecksumError: see :func:`download_file`; the message says which
            file to place where by hand.
        UnsafeArchiveError: an archive has a dangerous member.
        DownloadError: the finished folder fails the loader's check.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    source = REGISTRY[name]
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    marker = _marker_path(root, name)
    record = _marker_record(source)
    if _read_marker(marker) == record:
        return root
    downloads = root / DOWNLOADS_DIR
    for install in source.installs:
        target = root / install.target
        if target.exists():
            if not install.unpack:
                remote = source.file(install.sources[0])
                actual = file_checksum(target, remote.algo)
                if actual != remote.checksum.lower():
                    raise ChecksumError(
                        f"{target} has {remote.algo} {actual}, expected {remote.checksum}; "
                        f"delete or replace it, then run again"
                    )
            # An extracted folder cannot be checksummed; step (3) checks its contents.
            continue
        _install(install, [_obtain(source.file(s), downloads, timeout) for s in install.sources], root)
    try:
        source.verify(root)
    except DatasetError as err:
        entries = ", ".join(str(root / install.target) for install in source.installs)
        raise DownloadError(
            f"{name} at {root} does not pass its check: {err}. Entries placed there by hand or left by an "
            f"interrupted tool are kept as they are; delete the incomplete ones among {entries} and run again to "
            f"extract them from the verified archives."
        ) from err
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, marker)
    return root


def manual_instructions(name: str, root: str | os.PathLike[str]) -> str:
    """Human-readable list of the files to place by hand for an offline :func:`fetch_dataset`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    downloads = Path(root).resolve() / DOWNLOADS_DIR
    lines = [f"Place these files in {downloads} and run the fetch again:"]
    for remote in REGISTRY[name].files:
        lines.append(f"  {remote.name}  {remote.algo} {remote.checksum}  from {' or '.join(remote.urls)}")
    return "\n".join(lines)
