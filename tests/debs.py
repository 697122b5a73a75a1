"""Small Debian binary packages in the real layout, for tests (no network, no dpkg).

An ``ar`` archive written byte by byte (global header, 60-byte member headers, odd-size
padding) holding ``debian-binary``, ``control.tar.xz`` and ``data.tar.{xz,gz,zst,bz2}`` or a
plain ``data.tar``, whose members carry the ``./`` prefix that dpkg-deb writes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Mapping

import zstandard

DEMO_CONTROL = (
    "Package: demo-music\n"
    "Source: demo\n"
    "Version: 1.0+ds4-2\n"
    "Architecture: all\n"
    "Description: music of a demo game\n"
    " Package: not-a-field (a continuation line of Description)\n"
)
"""The control file of the demo package: a continuation line that looks like a field."""


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    """An ``ar`` archive in the common format dpkg-deb writes."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = b"".join(
            [
                name.encode("ascii").ljust(16),
                b"1700000000".ljust(12),  # mtime
                b"0".ljust(6),  # uid
                b"0".ljust(6),  # gid
                b"100644".ljust(8),  # mode, octal
                str(len(data)).encode("ascii").ljust(10),
                b"`\n",
            ]
        )
        assert len(header) == 60
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def entry(name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, link, 1700000000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if data is not None:
        info.size = len(data)
    return info, data


def tar_bytes(entries: list[tuple], compression: str) -> bytes:
    """A tar of ``entries`` compressed with "xz", "gz", "bz2", "zst" or "" (none)."""
    buf = io.BytesIO()
    mode = "w" if compression in ("", "zst") else f"w:{compression}"
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return zstandard.ZstdCompressor(level=3).compress(raw) if compression == "zst" else raw


def write_deb(path: Path, data_entries: list[tuple], compression: str = "xz", control: str = DEMO_CONTROL) -> Path:
    """A .deb at ``path``: ``control`` as ./control, ``data_entries`` (from :func:`entry`) as data.tar.<compression>."""
    suffix = f".{compression}" if compression else ""
    control_tar = tar_bytes([entry("./", kind=tarfile.DIRTYPE), entry("./control", control.encode())], "xz")
    path.write_bytes(
        ar_archive(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", control_tar),
                (f"data.tar{suffix}", tar_bytes(data_entries, compression)),
            ]
        )
    )
    return path



def build_deb(
    path: str | Path, package: str, version: str, files: Mapping[str, bytes], *, compression: str = "xz"
) -> Path:
    """A .deb of ``package`` ``version`` whose data holds ``files`` (package path -> bytes)."""
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nDescription: test package\n"
    entries = [entry(name if name.startswith(("/", "..")) else f"./{name}", data) for name, data in files.items()]
    return write_deb(Path(path), entries, compression, control)
