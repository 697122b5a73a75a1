"""Small Debian binary packages in the real layout, for tests (no network, no dpkg).

A .deb is an ``ar`` archive: ``debian-binary`` ("2.0\\n"), ``control.tar.*`` (``./control``)
and ``data.tar.*`` (the package's files under ``./``). ``ar`` headers are 60 bytes: name (16),
mtime (12), uid (6), gid (6), octal mode (8), size (10), then the magic "`\\n"; members are
padded to an even length with "\\n".
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Mapping


def _tar(files: Mapping[str, bytes], compression: str, *, links: Mapping[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name if name.startswith(("/", "..")) else f"./{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"./{name}")
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1_700_000_000
            tar.addfile(info)
    data = raw.getvalue()
    if compression == "xz":
        import lzma

        return lzma.compress(data)
    if compression == "gz":
        import gzip

        return gzip.compress(data, mtime=0)
    if compression == "zst":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    if compression == "":
        return data
    raise ValueError(f"unknown compression {compression!r}")


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def build_deb(
    path: str | Path,
    package: str,
    version: str,
    files: Mapping[str, bytes],
    *,
    compression: str = "xz",
    links: Mapping[str, str] | None = None,
) -> Path:
    """Write a .deb whose data.tar.<compression> holds ``files`` (package path -> bytes) and
    symlinks ``links`` (package path -> target); returns ``path``."""
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
    suffix = f".{compression}" if compression else ""
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar({"control": control.encode()}, "xz")),
        (f"data.tar{suffix}", _tar(files, compression, links=links)),
    ]
    path = Path(path)
    path.write_bytes(_ar(members))
    return path
