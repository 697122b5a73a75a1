"""Downloads against a local HTTP server, archive safety, and idempotent dataset fetching.

The server honours ``Range`` requests like the real hosts, and the fixture archives are
packed in each dataset's published layout (``genres.tar.gz``, the FMA zips, MTAT's
byte-split ``mp3.zip.00N`` plus ``annotations_final.csv``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from s3t.datasets import PUBLISHED_COUNTS, fma_manifest, gtzan_manifest, mtat_manifest, split_counts
from s3t.datasets import download
from s3t.datasets.download import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    RemoteFile,
    UnsafeArchiveError,
    download_file,
    fetch_dataset,
    file_checksum,
    manual_instructions,
    safe_extract,
)
from tests.test_datasets import build_fma_tree, build_gtzan_tree, build_mtat_tree


class FileServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1, honouring ``Range: bytes=N-`` and logging each request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[dict] = []
        self.honour_range = True
        self._answered = threading.Semaphore(0)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                try:
                    self.answer()
                finally:
                    server._answered.release()

            def answer(self) -> None:
                body = server.files.get(self.path)
                entry = {"path": self.path, "range": self.headers.get("Range"), "status": 404, "sent": 0}
                server.log.append(entry)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                requested = self.headers.get("Range")
                if requested and server.honour_range:
                    start = int(requested.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        entry["status"] = 416
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    entry["status"] = 206
                else:
                    self.send_response(200)
                    entry["status"] = 200
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])
                entry["sent"] = len(body) - start

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def answered_log(self, n: int = 1, timeout: float = 10.0) -> list[dict]:
        """The log once ``n`` requests have been answered in full: a handler runs on its own thread
        and may still be recording what it sent when the client has read the last byte."""
        for _ in range(n):
            if not self._answered.acquire(timeout=timeout):
                raise TimeoutError(f"the server answered fewer than {n} requests within {timeout} s")
        return self.log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def closed_port_url():
    # Bind then close: nothing listens there, so connecting is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/genres.tar.gz"


PAYLOAD = np.random.default_rng(0).bytes(300_000)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


# --- download_file -------------------------------------------------------------------------


def test_full_download_verifies_and_renames(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = download_file(server.url("/data.bin"), tmp_path / "d" / "data.bin", PAYLOAD_SHA256.upper(), "sha256")
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "d" / "data.bin.part").exists()
    assert server.answered_log() == [{"path": "/data.bin", "range": None, "status": 200, "sent": len(PAYLOAD)}]


def test_resume_sends_range_from_part_size_and_completes(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:100_000])
    download_file(server.url("/data.bin"), dest, PAYLOAD_SHA256, "sha256")
    assert dest.read_bytes() == PAYLOAD
    assert server.answered_log() == [{"path": "/data.bin", "range": "bytes=100000-", "status": 206, "sent": 200_000}]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes from elsewhere")
    download_file(server.url("/data.bin"), tmp_path / "data.bin", PAYLOAD_SHA256, "sha256")
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified_and_renamed(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download_file(server.url("/data.bin"), tmp_path / "data.bin", PAYLOAD_SHA256, "sha256")
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD and server.log[0]["status"] == 416


def test_tampered_content_raises_and_leaves_nothing(server, tmp_path):
    tampered = bytearray(PAYLOAD)
    tampered[12345] ^= 0xFF
    server.files["/data.bin"] = bytes(tampered)
    dest = tmp_path / "data.bin"
    with pytest.raises(ChecksumError) as err:
        download_file(server.url("/data.bin"), dest, PAYLOAD_SHA256, "sha256")
    assert f"expected sha256 {PAYLOAD_SHA256}, got {hashlib.sha256(tampered).hexdigest()}" in str(err.value)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_corrupt_partial_file_is_deleted_so_the_retry_succeeds(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(b"\0" * 1000)
    with pytest.raises(ChecksumError):
        download_file(server.url("/data.bin"), tmp_path / "data.bin", PAYLOAD_SHA256, "sha256")
    download_file(server.url("/data.bin"), tmp_path / "data.bin", PAYLOAD_SHA256, "sha256")
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_unreachable_url_fails_fast_saying_what_to_place_where(closed_port_url, tmp_path):
    dest = tmp_path / "downloads" / "genres.tar.gz"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_file(closed_port_url, dest, PAYLOAD_SHA256, "sha256", timeout=3)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert closed_port_url in message and f"place it at {dest}" in message and f"sha256 {PAYLOAD_SHA256}" in message
    assert not dest.exists()


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("/missing.zip"), tmp_path / "missing.zip", PAYLOAD_SHA256, "sha256")


def test_unknown_checksum_algorithm_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="crc32"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", "00", "crc32")


# --- safe_extract --------------------------------------------------------------------------


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def test_zip_with_parent_component_is_rejected_before_writing(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/first.txt", "fine")
        zf.writestr("../evil", "escaped")
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil'"):
        safe_extract(archive, dest)
    assert not dest.exists() and not (tmp_path / "out" / "evil").exists()


@pytest.mark.parametrize(
    "member, data, fragment",
    [
        (tar_member("/tmp/s3t-absolute-evil"), b"x", "absolute path"),
        (tar_member("etc_link", tarfile.SYMTYPE, "/etc"), None, "points outside"),
        (tar_member("up", tarfile.SYMTYPE, "../../outside"), None, "points outside"),
        (tar_member("hard", tarfile.LNKTYPE, "../outside"), None, "points outside"),
        (tar_member("dev/null", tarfile.CHRTYPE), None, "device"),
    ],
)
def test_tar_with_dangerous_member_is_rejected_naming_it(tmp_path, member, data, fragment):
    archive = make_tar(tmp_path / "evil.tar.gz", [(tar_member("genres/ok.txt"), b"fine"), (member, data)])
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match=fragment) as err:
        safe_extract(archive, dest)
    assert repr(member.name) in str(err.value)
    assert not dest.exists() and not Path("/tmp/s3t-absolute-evil").exists()


def test_tar_member_written_through_a_link_member_is_rejected(tmp_path):
    # "here" -> "." is harmless alone, but "here/up" -> ".." would resolve outside once "here" exists.
    archive = make_tar(
        tmp_path / "chain.tar",
        [(tar_member("here", tarfile.SYMTYPE, "."), None), (tar_member("here/up", tarfile.SYMTYPE, ".."), None)],
    )
    with pytest.raises(UnsafeArchiveError, match="inside the link member 'here'"):
        safe_extract(archive, tmp_path / "dest")


def test_safe_archives_extract_with_links_kept_inside(tmp_path):
    archive = make_tar(
        tmp_path / "good.tar.gz",
        [
            (tar_member("genres/blues/a.txt"), b"blues"),
            (tar_member("genres/latest", tarfile.SYMTYPE, "blues/a.txt"), None),
        ],
    )
    dest = safe_extract(archive, tmp_path / "dest")
    assert (dest / "genres" / "latest").read_text() == "blues"
    zipped = tmp_path / "good.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("0/clip.mp3", b"mp3")
    assert (safe_extract(zipped, tmp_path / "zdest") / "0" / "clip.mp3").read_bytes() == b"mp3"
    with pytest.raises(ValueError, match=".zip"):
        safe_extract(tmp_path / "archive.rar", tmp_path / "rdest")


def test_more_members_than_the_default_limit_are_refused_naming_the_archive(tmp_path):
    archive = tmp_path / "many.tar"
    with tarfile.open(archive, "w") as tar:
        for i in range(download.MAX_MEMBERS + 1):
            tar.addfile(tar_member(f"f/{i}.txt"), io.BytesIO(b""))
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match=f"many.tar: {download.MAX_MEMBERS + 1} members, more than max_members"):
        safe_extract(archive, dest)
    assert not dest.exists()
    assert (safe_extract(archive, dest, max_members=download.MAX_MEMBERS + 1) / "f" / "0.txt").exists()


def test_archive_unpacking_to_too_many_bytes_is_refused_before_writing(tmp_path):
    bomb = make_tar(tmp_path / "bomb.tar.gz", [(tar_member("zeros.wav"), bytes(4 << 20))])  # 4 MB -> ~4 KB
    with pytest.raises(UnsafeArchiveError, match=r"bomb.tar.gz: unpacks to 4194304 bytes, \d+ times"):
        safe_extract(bomb, tmp_path / "dest")
    with pytest.raises(UnsafeArchiveError, match="more than max_total_bytes=1000"):
        safe_extract(bomb, tmp_path / "dest", max_total_bytes=1000, max_ratio=1e6)
    zipped = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.wav", bytes(4 << 20))
    with pytest.raises(UnsafeArchiveError, match="times its own"):
        safe_extract(zipped, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("name", ["cut.tar.gz", "cut.tar", "cut.zip"])
def test_truncated_archive_raises_the_library_error_naming_the_file(tmp_path, name):
    rng = np.random.default_rng(0)
    payload = {f"genres/{i}.wav": rng.bytes(20_000) for i in range(4)}
    whole = tmp_path / ("whole" + name[3:])
    if name.endswith(".zip"):
        with zipfile.ZipFile(whole, "w") as zf:
            for member, data in payload.items():
                zf.writestr(member, data)
    else:
        with tarfile.open(whole, "w:gz" if name.endswith(".gz") else "w") as tar:
            for member, data in payload.items():
                info = tar_member(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    data = whole.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=f"{name}: unreadable or truncated archive") as info:
        safe_extract(tmp_path / name, tmp_path / "dest")
    assert "\n" not in str(info.value)


# --- fetch_dataset -------------------------------------------------------------------------


def pack_tar_gz(tree: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tree / top, arcname=top)
    return buffer.getvalue()


def pack_zip(tree: Path, top: str | None = None) -> bytes:
    """Zip ``tree/top`` as ``top/...`` or, with ``top=None``, the contents of ``tree`` at the top level."""
    buffer = io.BytesIO()
    base = tree / top if top else tree
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(base.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tree if top else base).as_posix())
    return buffer.getvalue()


def point_registry_at(monkeypatch, name: str, served: dict[str, tuple[str, bytes]], algo: str) -> None:
    """Replace dataset ``name``'s remote files by ``served`` (file name -> (url, content)) with their digests."""
    source = download.REGISTRY[name]
    files = tuple(
        RemoteFile(remote.name, (served[remote.name][0],), algo, hashlib.new(algo, served[remote.name][1]).hexdigest())
        for remote in source.files
    )
    monkeypatch.setitem(download.REGISTRY, name, dataclasses.replace(source, files=files))


@pytest.fixture(scope="module")
def gtzan_archive(tmp_path_factory) -> bytes:
    return pack_tar_gz(build_gtzan_tree(tmp_path_factory.mktemp("gtzan_src")), "genres")


def serve_gtzan(server, monkeypatch, archive: bytes) -> None:
    server.files["/sound/genres.tar.gz"] = archive
    point_registry_at(monkeypatch, "gtzan", {"genres.tar.gz": (server.url("/sound/genres.tar.gz"), archive)}, "sha256")


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_fetch_gtzan_then_second_fetch_does_nothing(server, monkeypatch, tmp_path, gtzan_archive):
    serve_gtzan(server, monkeypatch, gtzan_archive)
    root = tmp_path / "gtzan"
    assert fetch_dataset("gtzan", root) == root.resolve()
    assert split_counts(gtzan_manifest(root)) == PUBLISHED_COUNTS["gtzan"]
    marker = json.loads((root / ".s3t-complete-gtzan").read_text())
    assert marker["files"] == {"genres.tar.gz": f"sha256:{hashlib.sha256(gtzan_archive).hexdigest()}"}
    assert sorted(p.name for p in root.iterdir()) == [".s3t-complete-gtzan", "downloads", "genres"]
    requests, before = len(server.log), snapshot(root)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a completed dataset must not be extracted again")

    monkeypatch.setattr(download, "safe_extract", must_not_run)
    fetch_dataset("gtzan", root)
    assert len(server.log) == requests and snapshot(root) == before


def test_archive_placed_by_hand_is_accepted_offline(monkeypatch, tmp_path, gtzan_archive, closed_port_url):
    point_registry_at(monkeypatch, "gtzan", {"genres.tar.gz": (closed_port_url, gtzan_archive)}, "sha256")
    root = tmp_path / "gtzan"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "genres.tar.gz").write_bytes(gtzan_archive)
    fetch_dataset("gtzan", root)
    assert split_counts(gtzan_manifest(root)) == PUBLISHED_COUNTS["gtzan"]


def test_wrong_archive_placed_by_hand_is_refused(monkeypatch, tmp_path, gtzan_archive, closed_port_url):
    point_registry_at(monkeypatch, "gtzan", {"genres.tar.gz": (closed_port_url, gtzan_archive)}, "sha256")
    root = tmp_path / "gtzan"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "genres.tar.gz").write_bytes(gtzan_archive[:-10])
    with pytest.raises(ChecksumError, match=r"downloads/genres\.tar\.gz"):
        fetch_dataset("gtzan", root)
    assert not (root / "genres").exists() and not (root / ".s3t-complete-gtzan").exists()


def test_offline_fetch_fails_fast_naming_file_place_and_checksum(monkeypatch, tmp_path, gtzan_archive, closed_port_url):
    point_registry_at(monkeypatch, "gtzan", {"genres.tar.gz": (closed_port_url, gtzan_archive)}, "sha256")
    root = tmp_path / "gtzan"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_dataset("gtzan", root, timeout=3)
    assert time.monotonic() - start < 5
    digest = hashlib.sha256(gtzan_archive).hexdigest()
    assert f"place it at {root.resolve() / 'downloads' / 'genres.tar.gz'} (sha256 {digest})" in str(err.value)
    assert f"genres.tar.gz  sha256 {digest}" in manual_instructions("gtzan", root)


def test_interrupted_extraction_leaves_no_half_dataset(server, monkeypatch, tmp_path, gtzan_archive):
    serve_gtzan(server, monkeypatch, gtzan_archive)
    real_extract = download.safe_extract

    def extract_then_fail(archive, dest, **limits):
        (Path(dest) / "genres" / "blues").mkdir(parents=True)
        (Path(dest) / "genres" / "blues" / "blues.00000.wav").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(download, "safe_extract", extract_then_fail)
    root = tmp_path / "gtzan"
    with pytest.raises(OSError, match="disk full"):
        fetch_dataset("gtzan", root)
    assert sorted(p.name for p in root.iterdir()) == ["downloads"]
    monkeypatch.setattr(download, "safe_extract", real_extract)
    requests = len(server.log)
    fetch_dataset("gtzan", root)
    assert len(server.log) == requests  # the verified archive was reused
    assert split_counts(gtzan_manifest(root)) == PUBLISHED_COUNTS["gtzan"]


def test_tree_extracted_by_hand_is_checked_then_accepted(monkeypatch, tmp_path, gtzan_archive, closed_port_url):
    point_registry_at(monkeypatch, "gtzan", {"genres.tar.gz": (closed_port_url, gtzan_archive)}, "sha256")
    root = build_gtzan_tree(tmp_path / "gtzan")
    blues = root / "genres" / "blues" / "blues.00012.wav"
    blues.rename(root / "aside.wav")
    with pytest.raises(DownloadError, match=r"blues\.00012\.wav"):
        fetch_dataset("gtzan", root)
    assert not (root / ".s3t-complete-gtzan").exists()
    (root / "aside.wav").rename(blues)
    fetch_dataset("gtzan", root)
    assert (root / ".s3t-complete-gtzan").is_file()


def test_fetch_mtat_concatenates_split_zip(server, monkeypatch, tmp_path):
    tree = build_mtat_tree(tmp_path / "src")
    whole = pack_zip(tree / "mp3")  # the real mp3.zip holds 0/ ... f/ at its top level
    thirds = [whole[: len(whole) // 3], whole[len(whole) // 3 : 2 * len(whole) // 3], whole[2 * len(whole) // 3 :]]
    contents = {f"mp3.zip.00{i + 1}": part for i, part in enumerate(thirds)}
    contents["annotations_final.csv"] = (tree / "annotations_final.csv").read_bytes()
    served = {}
    for name, content in contents.items():
        server.files[f"/mtat/{name}"] = content
        served[name] = (server.url(f"/mtat/{name}"), content)
    point_registry_at(monkeypatch, "mtat", served, "md5")
    root = tmp_path / "mtat"
    fetch_dataset("mtat", root)
    assert sorted(p.name for p in root.iterdir()) == [".s3t-complete-mtat", "annotations_final.csv", "downloads", "mp3"]
    assert not (root / "downloads" / "mp3.zip").exists()
    fetched = [(Path(r.path).relative_to(root), r.labels, r.split) for r in mtat_manifest(root, split="directory")]
    source_rows = mtat_manifest(tree, split="directory")
    expected = [(Path(r.path).relative_to(tree.resolve()), r.labels, r.split) for r in source_rows]
    assert fetched == expected
    annotations_md5 = hashlib.md5(contents["annotations_final.csv"]).hexdigest()
    assert file_checksum(root / "annotations_final.csv", "md5") == annotations_md5


def test_fetch_fma_small_installs_both_zips(server, monkeypatch, tmp_path):
    tree = build_fma_tree(tmp_path / "src")
    served = {}
    for name in ("fma_metadata", "fma_small"):
        server.files[f"/fma/{name}.zip"] = pack_zip(tree, name)
        served[f"{name}.zip"] = (server.url(f"/fma/{name}.zip"), server.files[f"/fma/{name}.zip"])
    point_registry_at(monkeypatch, "fma_small", served, "sha1")
    root = tmp_path / "fma"
    fetch_dataset("fma_small", root)
    rows, skipped = fma_manifest(root)
    assert [Path(r.path).name for r in rows] == [Path(r.path).name for r in fma_manifest(tree)[0]]
    assert len(skipped) == 3


def test_unknown_dataset_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="gtzan, fma_small, mtat"):
        fetch_dataset("audioset", tmp_path)
