"""Reading Debian packages: control fields, extraction of named members only, and refusals.

The fixture packages are built here in the real layout: an ``ar`` archive written byte by
byte (global header, 60-byte member headers, odd-size padding) holding ``debian-binary``,
``control.tar.xz`` and ``data.tar.{xz,gz,zst,bz2}`` or a plain ``data.tar``, whose members
carry the ``./`` prefix that dpkg-deb writes.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

from s3t.datasets.debian import DebError, DebInfo, deb_info, extract_deb_members
from s3t.datasets.download import DownloadError, UnsafeArchiveError
from tests.debs import ar_archive, entry, write_deb

MUSIC = "usr/share/games/demo/music"
THEME = f"{MUSIC}/theme.ogg"
BATTLE = f"{MUSIC}/battle.ogg"
CLICK = "usr/share/games/demo/sfx/click.wav"
MENU_LINK = f"{MUSIC}/menu.ogg"


@pytest.fixture
def payload() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    # Odd sizes exercise the ar padding byte and tar's 512-byte block padding.
    return {
        THEME: rng.bytes(70_001),
        BATTLE: rng.bytes(3_333),
        CLICK: rng.bytes(1_025),
        "usr/share/doc/demo-music/copyright": b"Free to share.\n",
    }


def package_entries(payload: dict[str, bytes]) -> list[tuple]:
    folders = ["./", "./usr/", "./usr/share/", "./usr/share/doc/", "./usr/share/doc/demo-music/",
               "./usr/share/games/", "./usr/share/games/demo/", f"./{MUSIC}/", "./usr/share/games/demo/sfx/"]
    entries = [entry(name, kind=tarfile.DIRTYPE) for name in folders]
    entries += [entry(f"./{path}", data) for path, data in payload.items()]
    entries.append(entry(f"./{MENU_LINK}", kind=tarfile.SYMTYPE, link="theme.ogg"))
    return entries


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


@pytest.fixture
def deb(tmp_path, payload) -> Path:
    return write_deb(tmp_path / "demo-music_1.0+ds4-2_all.deb", package_entries(payload))


def test_deb_info_reads_the_control_fields(deb):
    assert deb_info(deb) == DebInfo(package="demo-music", version="1.0+ds4-2", architecture="all")
    assert deb_info(str(deb)).package == "demo-music"


def test_deb_info_names_missing_control_fields(tmp_path, payload):
    deb = write_deb(tmp_path / "x.deb", package_entries(payload), control="Package: x\nVersion: 1\n")
    with pytest.raises(DebError, match="Architecture"):
        deb_info(deb)


@pytest.mark.parametrize("compression", ["xz", "gz", "zst", "bz2", ""])
def test_extracts_exactly_the_requested_members(tmp_path, payload, compression):
    deb = write_deb(tmp_path / f"demo-{compression or 'plain'}.deb", package_entries(payload), compression)
    dest = tmp_path / "out"

    written = extract_deb_members(deb, [THEME, f"./{BATTLE}"], dest)

    assert written == {THEME: dest / THEME, BATTLE: dest / BATTLE}
    # The unrequested sound file, the doc file, the link and the empty folders are not written.
    assert files_under(dest) == {THEME, BATTLE}
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_dir()) == [
        "usr", "usr/share", "usr/share/games", "usr/share/games/demo", MUSIC]
    for path, target in written.items():
        assert target.read_bytes() == payload[path]


def test_written_files_are_0644_with_no_temporary_files_left(deb, tmp_path, payload):
    dest = tmp_path / "out"
    (dest / MUSIC).mkdir(parents=True)
    (dest / THEME).write_bytes(b"an older copy")
    old_umask = os.umask(0o077)
    try:
        written = extract_deb_members(deb, [THEME, BATTLE], dest)
    finally:
        os.umask(old_umask)
    for target in written.values():
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert (dest / THEME).read_bytes() == payload[THEME]
    assert sorted(os.listdir(dest / MUSIC)) == ["battle.ogg", "theme.ogg"]


def test_nothing_requested_writes_nothing(deb, tmp_path):
    assert extract_deb_members(deb, [], tmp_path / "out") == {}
    assert not (tmp_path / "out").exists()


def test_traversal_member_is_refused_before_anything_is_written(tmp_path, payload):
    entries = package_entries(payload) + [entry("../evil.ogg", b"evil")]
    deb = write_deb(tmp_path / "evil.deb", entries)
    dest = tmp_path / "out" / "dest"
    before = files_under(tmp_path)

    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil\.ogg'.*'\.\.'"):
        extract_deb_members(deb, [THEME], dest)

    assert not dest.exists()
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    "bad_entry, pattern",
    [
        (entry("/etc/evil.ogg", b"evil"), "absolute path"),
        (entry(f"./{MUSIC}/up.ogg", kind=tarfile.SYMTYPE, link="../../../../../../etc/passwd"), "points outside"),
        (entry("./usr/dev.ogg", kind=tarfile.CHRTYPE), "device"),
    ],
    ids=["absolute", "symlink-out", "device"],
)
def test_unsafe_members_are_refused_naming_them(tmp_path, payload, bad_entry, pattern):
    deb = write_deb(tmp_path / "bad.deb", package_entries(payload) + [bad_entry])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=pattern) as caught:
        extract_deb_members(deb, [THEME], dest)
    assert bad_entry[0].name in str(caught.value)
    assert not dest.exists()


def test_missing_requested_members_are_named(deb, tmp_path):
    missing = [f"{MUSIC}/lost{i}.ogg" for i in range(7)]
    with pytest.raises(DebError) as caught:
        extract_deb_members(deb, [THEME, *missing], tmp_path / "out")
    message = str(caught.value)
    assert isinstance(caught.value, DownloadError)
    assert all(name in message for name in missing[:5]) and missing[5] not in message
    assert "and 2 more" in message and "not in the package" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path, kind", [(MENU_LINK, "a symlink"), (MUSIC, "a folder"), ("usr/hard.ogg", "a hard link")])
def test_requested_member_that_is_not_a_regular_file_is_refused(tmp_path, payload, path, kind):
    entries = package_entries(payload) + [entry("./usr/hard.ogg", kind=tarfile.LNKTYPE, link=f"./{THEME}")]
    deb = write_deb(tmp_path / "demo.deb", entries)
    with pytest.raises(DebError, match=f"'{path}' \\({kind}\\)"):
        extract_deb_members(deb, [THEME, path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_size_budget_is_checked_before_writing(deb, tmp_path, payload):
    budget = len(payload[THEME]) + len(payload[BATTLE])
    with pytest.raises(DebError, match="max_total_bytes"):
        extract_deb_members(deb, [THEME, BATTLE], tmp_path / "out", max_total_bytes=budget - 1)
    assert not (tmp_path / "out").exists()
    assert set(extract_deb_members(deb, [THEME, BATTLE], tmp_path / "out", max_total_bytes=budget)) == {THEME, BATTLE}


@pytest.mark.parametrize("name", ["../x.ogg", "/usr/x.ogg", "usr/../../x.ogg", "", ".", "usr\\x.ogg"])
def test_requested_paths_must_stay_inside_the_package(deb, tmp_path, name):
    with pytest.raises(ValueError, match="relative to the package root"):
        extract_deb_members(deb, [name], tmp_path / "out")


def _truncations(deb: Path) -> list[bytes]:
    raw = deb.read_bytes()
    # Inside the global header, inside a member header, inside control.tar, inside data.tar.
    return [raw[:5], raw[:8 + 30], raw[:200], raw[: len(raw) - 1000]]


def test_unreadable_files_raise_deb_error(deb, tmp_path):
    text = tmp_path / "notes.deb"
    text.write_text("this is not a package\n")
    static_lib = tmp_path / "libx.deb"
    static_lib.write_bytes(ar_archive([("x.o", b"\x7fELF")]))
    # A negative size field would send a naive reader backwards forever.
    negative = tmp_path / "negative.deb"
    negative.write_bytes(deb.read_bytes().replace(b"4         `\n", b"-60       `\n", 1))
    bad = [text, static_lib, negative]
    for i, cut in enumerate(_truncations(deb)):
        bad.append(tmp_path / f"cut{i}.deb")
        bad[-1].write_bytes(cut)
    for path in bad:
        for read in (deb_info, lambda p: extract_deb_members(p, [THEME], tmp_path / "out")):
            with pytest.raises(DebError, match=path.name):
                read(path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("compression", ["xz", "gz", "zst", "bz2"])
def test_corrupt_compressed_data_raises_deb_error(tmp_path, payload, compression):
    deb = write_deb(tmp_path / "demo.deb", package_entries(payload), compression)
    raw = bytearray(deb.read_bytes())
    data_start = raw.index(b"data.tar") + 60
    # Garbage over the middle of data.tar keeps the ar layout intact.
    raw[data_start + 40 : data_start + 2040] = np.random.default_rng(1).bytes(2000)
    deb.write_bytes(bytes(raw))
    with pytest.raises(DebError, match="not a readable Debian package"):
        extract_deb_members(deb, [THEME, BATTLE, CLICK], tmp_path / "out")
    assert not (tmp_path / "out").exists()
