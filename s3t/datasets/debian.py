"""Reading audio files out of Debian binary packages (``.deb``) without installing them.

A ``.deb`` is an ``ar`` archive of three members: ``debian-binary`` (the format version,
``2.0``), ``control.tar[.gz|.xz|.zst]`` (the package metadata; its ``control`` file holds
the ``Package:``, ``Version:`` and ``Architecture:`` fields) and
``data.tar[.gz|.xz|.zst|.bz2]`` (the files the package installs, named relative to ``/``,
usually with a leading ``./``). Freely licensed game music is shipped this way, e.g.
``drascula-music`` holds ``usr/share/scummvm/drascula/audio/track1.ogg``.

Only the named regular files are extracted: a package also holds documentation, links
and folders meant for a system install, none of which a dataset needs, and skipping them
keeps the output exactly the list the caller asked for.

Guarantees of :func:`extract_deb_members`:

- Checks before writing: every member of ``data.tar`` is checked with the rules of
  :func:`s3t.datasets.download.safe_extract` (absolute paths, ``..`` components, links
  leaving the package root, devices), and every requested path must be a regular file
  within the size budget, before the first byte is written.
- Nothing outside ``dest``: a requested path is written to ``dest/<path>``, and paths with
  an absolute root or a ``..`` component are refused.
- Atomic: each file is written to a temporary name in its final folder and renamed into
  place, so a file under its final name is always complete.
- Bounded memory: members are decompressed as a stream and copied in
  :data:`s3t.datasets.download.CHUNK_BYTES` chunks, whatever the package size.

The data is read with the standard library (``tarfile`` with its gzip, xz and bzip2
support), ``arpy`` for the ``ar`` container and ``zstandard`` for ``.zst`` members; both
are in the ``pipeline`` extra and imported only when a package is read.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterable, Iterator

from s3t.datasets.download import CHUNK_BYTES, DownloadError, _check_tar

if TYPE_CHECKING:
    import arpy

AR_MAGIC = b"!<arch>\n"
"""The first bytes of every (non-thin) ``ar`` archive, hence of every ``.deb``."""

FILE_MODE = 0o644
"""Permission bits of every extracted file (what dpkg installs data files with)."""

_COMPRESSIONS = {".tar": "", ".tar.gz": "gz", ".tar.xz": "xz", ".tar.bz2": "bz2", ".tar.zst": "zst"}
"""Suffix of a ``control.tar*``/``data.tar*`` member -> compression ("" = plain tar)."""

_CONTROL_MAX_BYTES = 1 << 20
"""Largest ``control`` file read into memory (real ones are a few KiB)."""

_REQUIRED_FIELDS = ("package", "version", "architecture")


class DebError(DownloadError):
    """A file that is not a readable Debian binary package, or lacks a requested member."""


@dataclass(frozen=True)
class DebInfo:
    """The identifying fields of a package's ``control`` file."""

    package: str
    version: str
    architecture: str


def _unreadable(deb: Path, what: str, err: BaseException) -> DebError:
    return DebError(
        f"{deb} is not a readable Debian package ({what}: {str(err) or type(err).__name__}); "
        f"delete it and download it again"
    )


@contextmanager
def _open_deb(deb: Path) -> Iterator[tuple[arpy.Archive, dict[str, arpy.ArchiveFileHeader]]]:
    """The open ``ar`` archive and its members (name -> header), checked to lie within the file."""
    import arpy

    with deb.open("rb") as fh:
        # arpy also accepts thin archives, whose members name other files on disk.
        if fh.read(len(AR_MAGIC)) != AR_MAGIC:
            raise DebError(
                f"{deb} is not a Debian package: it does not start with the ar header {AR_MAGIC!r}; "
                f"delete it and download the .deb again"
            )
        fh.seek(0)
        file_size = os.fstat(fh.fileno()).st_size
        members: dict[str, arpy.ArchiveFileHeader] = {}
        try:
            archive = arpy.Archive(fileobj=fh)
            # Header by header rather than infolist(): arpy follows a negative size field
            # backwards and would loop forever, so each size is checked before moving on.
            while (header := archive.read_next_header()) is not None:
                name = header.name.decode("utf-8", "replace") if isinstance(header.name, bytes) else header.name
                end = header.offset + arpy.HEADER_LEN + header.size
                if header.size < 0 or end > file_size:
                    raise DebError(
                        f"{deb} is truncated or corrupt: its member {name!r} claims {header.size} bytes, "
                        f"ending at byte {end}, but the file has {file_size}; delete it and download it again"
                    )
                if header.type in (arpy.HEADER_NORMAL, arpy.HEADER_BSD, arpy.HEADER_GNU):
                    members[name] = header
        except arpy.ArchiveFormatError as err:
            raise _unreadable(deb, "ar headers", err) from err
        _check_debian_binary(deb, archive, members)
        yield archive, members


def _check_debian_binary(deb: Path, archive: arpy.Archive, members: dict[str, arpy.ArchiveFileHeader]) -> None:
    # Other ar files (static libraries, for one) share the magic; debian-binary tells them apart.
    if "debian-binary" not in members:
        raise DebError(
            f"{deb} is an ar archive but not a Debian package: it has no debian-binary member "
            f"(members: {', '.join(members) or 'none'})"
        )
    version = archive.open(members["debian-binary"]).read(16)
    if not version.startswith(b"2."):
        raise DebError(f"{deb} is Debian package format {version!r}; only format 2.x (every .deb since 1995) is read")


def _find_member(deb: Path, members: dict[str, arpy.ArchiveFileHeader], stem: str) -> str:
    """The name of the ``<stem>.tar*`` member, e.g. ``data.tar.xz`` for stem ``data``."""
    found = [name for name in members if name.startswith(f"{stem}.tar")]
    if not found:
        raise DebError(
            f"{deb} has no {stem}.tar member (members: {', '.join(members)}); it is truncated or not a "
            f"binary package: delete it and download it again"
        )
    name = found[0]
    if name[len(stem) :] not in _COMPRESSIONS:
        known = ", ".join(f"{stem}{suffix}" for suffix in _COMPRESSIONS)
        raise DebError(f"{deb}: member {name!r} uses a compression this reader does not know (known: {known})")
    return name


@contextmanager
def _member_tar(
    deb: Path, archive: arpy.Archive, header: arpy.ArchiveFileHeader, name: str
) -> Iterator[tarfile.TarFile]:
    """A streaming (forward-only) TarFile over one ``ar`` member; read failures become DebError."""
    import arpy

    compression = _COMPRESSIONS[name[name.index(".tar") :]]
    read_errors: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, arpy.ArchiveAccessError)
    with ExitStack() as stack:
        # open(header) gives a fresh reader positioned at the member's start on every call.
        source: IO[bytes] = archive.open(header)
        mode = f"r|{compression}"
        if compression == "zst":
            import zstandard

            read_errors += (zstandard.ZstdError,)
            # Several concatenated frames (as pzstd writes) are one valid stream.
            source = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True))
            mode = "r|"
        try:
            yield stack.enter_context(tarfile.open(fileobj=source, mode=mode))
        except read_errors as err:
            raise _unreadable(deb, name, err) from err


def _control_fields(text: str) -> dict[str, str]:
    """Single-line fields of the first paragraph of an RFC 822-style control file, lower-case names."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t":
            # Continuation of a multi-line field such as Description.
            continue
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def deb_info(deb: str | os.PathLike[str]) -> DebInfo:
    """Package name, version and architecture from the ``control`` file of a ``.deb``.

    Raises:
        DebError: the file is not an ``ar`` archive, is truncated, has no ``debian-binary``
            or ``control.tar*`` member, or its ``control`` file is missing, not UTF-8, or
            lacks one of the three fields.
        FileNotFoundError: ``deb`` does not exist.
    """
    deb = Path(deb)
    with _open_deb(deb) as (archive, members):
        name = _find_member(deb, members, "control")
        with _member_tar(deb, archive, members[name], name) as tar:
            for member in tar:
                if posixpath.normpath(member.name) == "control" and member.isfile():
                    if member.size > _CONTROL_MAX_BYTES:
                        raise DebError(
                            f"{deb}: its control file holds {member.size} bytes, more than the "
                            f"{_CONTROL_MAX_BYTES} a real one could; delete it and download it again"
                        )
                    raw = tar.extractfile(member).read()
                    break
            else:
                raise DebError(f"{deb}: {name} has no control file; delete it and download it again")
    try:
        fields = _control_fields(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _unreadable(deb, "control file", err) from err
    missing = [field for field in _REQUIRED_FIELDS if not fields.get(field)]
    if missing:
        names = ", ".join(field.capitalize() for field in missing)
        raise DebError(f"{deb}: its control file lacks the field(s) {names}; delete it and download it again")
    return DebInfo(*(fields[field] for field in _REQUIRED_FIELDS))


def _package_path(name: str) -> str:
    """``name`` normalized (``./`` and doubled slashes removed); ValueError unless it stays inside the package."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or ".." in parts or posixpath.normpath(name) == ".":
        raise ValueError(
            f"{name!r} is not a path inside a package: give it relative to the package root, without '..' "
            f"or backslashes, e.g. 'usr/share/games/x/music/a.ogg'"
        )
    return posixpath.normpath(name)


def _write_atomic(source: IO[bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as sink:
            shutil.copyfileobj(source, sink, CHUNK_BYTES)
        # mkstemp creates 0o600 files; data files are meant to be world-readable.
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    finally:
        # After a successful replace the temporary name is gone; after a failure it is removed.
        tmp.unlink(missing_ok=True)


def _describe_absent(deb: Path, data_name: str, absent: list[tuple[str, str]]) -> DebError:
    shown = ", ".join(f"{path!r} ({why})" for path, why in absent[:5])
    more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
    return DebError(
        f"{deb}: {data_name} has no regular file at {shown}{more}; nothing was written. List the package's "
        f"files with `dpkg-deb -c {deb}` and request regular files (for a link, its target)"
    )


def extract_deb_members(
    deb: str | os.PathLike[str],
    members: Iterable[str],
    dest: str | os.PathLike[str],
    *,
    max_total_bytes: int = 4 * 2**30,
) -> dict[str, Path]:
    """Extract only the named regular files of a package's ``data.tar*`` into ``dest``.

    Args:
        deb: the ``.deb`` file.
        members: package paths such as ``usr/share/games/x/music/a.ogg``, matched against
            the ``data.tar`` member names with any leading ``./`` removed.
        dest: folder to write ``dest/<path>`` into; created if missing.
        max_total_bytes: refuse when the requested files hold more bytes than this.

    Returns:
        Normalized package path -> written file (mode 0o644), in the order requested.

    Raises:
        UnsafeArchiveError: a ``data.tar`` member has an absolute path or a ``..`` component,
            is a link leaving the package root (or lies inside a link member), or is a
            device/FIFO; nothing is written.
        DebError: the file is not a readable package (see :func:`deb_info`), a requested
            path is missing or not a regular file (symlink, hard link, folder), or the
            requested files exceed ``max_total_bytes``; nothing is written.
        ValueError: a requested path is absolute, contains ``..`` or a backslash, or is empty;
            or ``max_total_bytes`` is negative.
        OSError: ``deb`` cannot be opened, or writing under ``dest`` fails.
    """
    if max_total_bytes < 0:
        raise ValueError(f"max_total_bytes must be >= 0, got {max_total_bytes}")
    deb, dest = Path(deb), Path(dest)
    wanted = list(dict.fromkeys(_package_path(name) for name in members))
    with _open_deb(deb) as (archive, ar_members):
        data_name = _find_member(deb, ar_members, "data")
        header = ar_members[data_name]

        # Pass 1, headers only: the safety check and the lookup of every requested path.
        with _member_tar(deb, archive, header, data_name) as tar:
            _check_tar(tar, Path(f"{deb} ({data_name})"))
            found: dict[str, tarfile.TarInfo] = {}
            for member in tar.getmembers():
                # A name stored twice is extracted by tar from its last copy; so here.
                found[posixpath.normpath(member.name)] = member
        absent = []
        for path in wanted:
            member = found.get(path)
            if member is None:
                absent.append((path, "not in the package"))
            elif not member.isfile():
                kind = "a symlink" if member.issym() else "a hard link" if member.islnk() else "a folder"
                absent.append((path, kind))
        if absent:
            raise _describe_absent(deb, data_name, absent)
        total = sum(found[path].size for path in wanted)
        if total > max_total_bytes:
            raise DebError(
                f"{deb}: the {len(wanted)} requested file(s) hold {total} bytes, more than max_total_bytes="
                f"{max_total_bytes}; nothing was written. Request fewer files or raise max_total_bytes"
            )
        if not wanted:
            return {}

        # Pass 2: copy the requested members, identified by their offset in the tar stream.
        by_offset = {found[path].offset: path for path in wanted}
        written: dict[str, Path] = {}
        dest.mkdir(parents=True, exist_ok=True)
        with _member_tar(deb, archive, header, data_name) as tar:
            for member in tar:
                path = by_offset.get(member.offset)
                if path is None or path != posixpath.normpath(member.name) or not member.isfile():
                    continue
                target = dest / path
                _write_atomic(tar.extractfile(member), target)
                written[path] = target
                if len(written) == len(by_offset):
                    # The rest of the stream holds nothing requested.
                    break
        if len(written) != len(by_offset):
            unwritten = ", ".join(repr(path) for path in wanted if path not in written)
            raise DebError(f"{deb} changed while it was read ({unwritten} not found again); run again")
    return {path: written[path] for path in wanted}
