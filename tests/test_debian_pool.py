"""Debian's free music as a pre-training pool: reserved packages refused at every entry point, the
streaming .deb indexer (sniffing, zips, durations, de-duplication, drop rules, DEP-5 licences),
the pool CSV, and building the pool with a stand-in apt-get. Fixture packages are built in the real
layout (tests/debs.py) around real audio: quiet sines at 8 kHz, 31-35 s, so they stay small."""

from __future__ import annotations

import io
import pickle
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from s3t.datasets import debian_pool
from s3t.datasets.debian import DebError
from s3t.datasets.debian_pool import (
    POOL_COLUMNS, RESERVED_MEMBERS, RESERVED_PACKAGES, PoolEntry, PoolIndexError, ReservedPackageError, check_usable,
    deduplicate, index_deb, is_reserved, member_licence, read_pool_index, write_pool_index,
)
from s3t.datasets.download import DownloadError
from s3t.datasets.soundtracks import (
    IndexEntry, _apt_download, _obtain_debs, fetch_soundtracks, index_package, read_index, transfer_entries, write_index,
)
from tests.debs import ar_archive, entry, tar_bytes, write_deb

RATE = 8000
DEMO = "demo-pool-data"
MUSIC = "usr/share/games/demo/music"
STK = "usr/share/games/supertuxkart/data"
RABBIT = f"{STK}/tracks/cave/beneath_the_rabbit_hole.ogg"
SHA = "0" * 64

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo
Source: https://example.org/demo

Files: *
Copyright: 2020 The Demo Team
License: GPL-2+

Files: music/theme.*
 music/unused.ogg
Copyright: 2021 A Composer
License: CC-BY-SA-3.0
 Attribution-ShareAlike 3.0 Unported.

Files: data/music/cave.ogg
Copyright: 2022 Another Composer
License: CC0-1.0

License: GPL-2+
 This program is free software; you can redistribute it.
"""

FREE_TEXT = """SuperTuxKart data, packaged for Debian.

Copyright 2004-2022 the SuperTuxKart team.
The music is licensed under the Creative Commons Attribution-ShareAlike 3.0 licence.
Other files are GPL-3+.
"""


def _audio(freq: float, seconds: float, fmt: str = "OGG", subtype: str = "VORBIS", title: str = "") -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    buf = io.BytesIO()
    with soundfile.SoundFile(buf, "w", RATE, 1, format=fmt, subtype=subtype) as sound:
        if title:
            sound.title = title
        sound.write((0.05 * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    return buf.getvalue()


def _deb(path: Path, package: str, version: str, files: dict[str, bytes], links: dict[str, str] | None = None,
         compression: str = "xz") -> Path:
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nDescription: test music\n"
    entries = [entry(f"./{name}", data) for name, data in files.items()]
    entries += [entry(f"./{name}", kind=tarfile.SYMTYPE, link=target) for name, target in (links or {}).items()]
    return write_deb(path, entries, compression, control)


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def sounds() -> dict[str, bytes]:
    return {
        "theme_ogg": _audio(440, 33), "theme_flac": _audio(440, 33, "FLAC", "PCM_16"), "battle": _audio(330, 31),
        "cave": _audio(550, 32, title="Deep Cave"), "intro": _audio(660, 34), "jingle": _audio(770, 10),
        "opus": _audio(880, 35, "OGG", "OPUS"), "mp3": _audio(250, 31, "MP3", "MPEG_LAYER_III"),
        "race": _audio(500, 32), "race_fast": _audio(510, 32),
    }


@pytest.fixture(scope="module")
def debs(tmp_path_factory, sounds) -> dict[str, Path]:
    """demo-pool-data (DEP-5 copyright) and supertuxkart-data (free-text copyright), sharing one track."""
    folder = tmp_path_factory.mktemp("debs")
    midi = b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
    demo = _deb(folder / f"{DEMO}_1.2-3_all.deb", DEMO, "1.2-3", {
        f"usr/share/doc/{DEMO}/copyright": DEP5.encode(),
        f"{MUSIC}/theme.ogg": sounds["theme_ogg"],
        f"{MUSIC}/theme.flac": sounds["theme_flac"],  # the same track in two formats: the FLAC is kept
        f"{MUSIC}/battle.ogg": sounds["battle"],
        f"{MUSIC}/battle_again.ogg": sounds["battle"],  # the same bytes twice
        f"{MUSIC}/intro": sounds["intro"],  # Ogg without an extension
        f"{MUSIC}/finale.opus": sounds["opus"],
        f"{MUSIC}/march.mp3": sounds["mp3"],
        "usr/share/games/demo/data/music.pk3": _zip({"music/cave.ogg": sounds["cave"], "textures/wall.png": b"\x89PNG"}),
        "usr/share/games/demo/level.data": b"not a zip, despite the name",
        "usr/share/games/demo/sfx/splash01.wav": midi,  # MIDI under a .wav name
        f"{MUSIC}/jingle.ogg": sounds["jingle"],  # 10 s: too short
    }, links={f"{MUSIC}/menu.ogg": "theme.ogg"})
    stk = _deb(folder / "supertuxkart-data_1.4+dfsg-2_all.deb", "supertuxkart-data", "1.4+dfsg-2", {
        "usr/share/doc/supertuxkart-data/copyright": FREE_TEXT.encode(),
        f"{STK}/music/race.ogg": sounds["race"],
        f"{STK}/music/race_fast.ogg": sounds["race_fast"],  # a tempo variant
        f"{STK}/music/battle.ogg": sounds["battle"],  # shipped by demo-pool-data too
        RABBIT: b"OggS: never read, so never found to be no Ogg at all",
    }, compression="gz")
    return {"demo": demo, "stk": stk}


@pytest.fixture(scope="module")
def indexed(debs) -> dict[str, tuple[list[PoolEntry], list[tuple[str, str]]]]:
    out = {}
    for name, deb in debs.items():
        skipped: list[tuple[str, str]] = []
        out[name] = (index_deb(deb, skipped=skipped), skipped)
    return out


# ----------------------------------------------------------------------------- reserved packages


def _recording_apt_get(folder: Path) -> tuple[Path, Path]:
    """A stand-in apt-get that records each call and fails, as an offline one would."""
    calls = folder / "apt-calls"
    fake = folder / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit 100\n')
    fake.chmod(0o755)
    return fake, calls


def _index_entry(package: str, path: str = "usr/share/games/x/music/a.ogg") -> IndexEntry:
    return IndexEntry(package, "1.0-1", path, SHA, 60.0, "GPL-2+", "a", "")


def _pool_entry(package: str, member: str = "usr/share/games/x/music/a.ogg") -> PoolEntry:
    return PoolEntry(package, "1.0-1", member, SHA, 60.0, "GPL-2+", "a", "vorbis")


def test_the_reserved_list_is_the_facts_files():
    assert RESERVED_PACKAGES == {
        "0ad-data", "berusky2-data", "blobwars-data", "megaglest-data", "nexuiz-music", "redeclipse-data",
        "supertux-data", "unknown-horizons", "warzone2100-music", "wesnoth-1.16-music",
    }
    assert RESERVED_MEMBERS == {("supertuxkart-data", "games/supertuxkart/data/tracks/cave/beneath_the_rabbit_hole.ogg")}
    facts = Path(__file__).resolve().parents[2] / "shared" / "data" / "debian-music.md"
    if facts.is_file():  # the facts file lives beside the checkout, not in it
        reserved = facts.read_text().split("## Reserved", 1)[1].split("##", 1)[0]
        assert all(name in reserved for name in RESERVED_PACKAGES)


@pytest.mark.parametrize("name", sorted(RESERVED_PACKAGES))
def test_each_reserved_package_is_refused_at_every_entry_point(tmp_path, name):
    fake, calls = _recording_apt_get(tmp_path)
    downloads = tmp_path / "downloads"
    refused = pytest.raises(ReservedPackageError, match=rf"{name}.*held-out checks.*never be fetched, indexed or used")
    with refused:
        _apt_download(str(fake), name, "1.0-1", tmp_path, 5.0)
    with refused:
        _obtain_debs([_index_entry(name)], downloads, str(fake), 5.0, [])
    with refused:
        fetch_soundtracks(tmp_path / "root", [_index_entry("singularity-music"), _index_entry(name)], apt_get=str(fake))
    with refused:
        index_package(tmp_path, name, "1.0-1")
    write_index([_index_entry("flare-game"), _index_entry(name)], tmp_path / "index.csv")
    with pytest.raises(ReservedPackageError, match="line 3"):  # refused, not dropped
        read_index(tmp_path / "index.csv")
    with refused:
        transfer_entries(["flare-game", "marsshooter-data", name])
    with refused:  # by the file name, before the file is opened (here it does not even exist)
        index_deb(tmp_path / f"{name}_1.0-1_all.deb")
    with refused:
        write_pool_index([_pool_entry(name)], tmp_path / "pool.csv")
    assert not (tmp_path / "pool.csv").exists()
    for spelled in (name.upper(), f" {name} ", f"{name}=1.0-1", f"{name}:all", f"{name}/bookworm"):
        with pytest.raises(ReservedPackageError, match="held-out checks"):
            check_usable(spelled)
    # Nothing was fetched, created or asked of apt-get.
    assert not calls.exists() and not downloads.exists() and not (tmp_path / "root").exists()


def test_a_reserved_package_inside_an_innocent_file_name_is_refused_before_its_data_is_read(tmp_path):
    control = tar_bytes([entry("./control", b"Package: blobwars-data\nVersion: 2.00-1\nArchitecture: all\n")], "xz")
    deb = tmp_path / "music_1.0_all.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", b"not xz")]))
    with pytest.raises(ReservedPackageError, match="control file.*blobwars-data"):
        index_deb(deb)  # reading data.tar.xz would have raised DebError


def test_near_miss_names_are_not_reserved(tmp_path):
    for name in ("0ad", "supertux-data2", "supertuxkart-data", "supertux", "wesnoth-1.18-music", "wesnoth-music",
                 "nexuiz-data", "warzone2100", "unknown-horizons-data", "xblast-tnt-musics"):
        check_usable(name)
        check_usable(name, "usr/share/games/x/music/a.ogg")
        assert not is_reserved(name)
    write_index([_index_entry("flare-game"), _index_entry("0ad", "usr/share/games/0ad/music/a.ogg")], tmp_path / "i.csv")
    assert [e.package for e in read_index(tmp_path / "i.csv")] == ["flare-game", "0ad"]


def test_the_reserved_supertuxkart_track_is_refused_and_the_rest_of_the_package_passes(tmp_path):
    for spelled in (RABBIT, f"./{RABBIT}", f"/{RABBIT}", RABBIT.replace("games/", "games//"),
                    "games/supertuxkart/data/tracks/cave/beneath_the_rabbit_hole.ogg", f"data.pk3!{RABBIT}"):
        with pytest.raises(ReservedPackageError, match="beneath_the_rabbit_hole.ogg.*supertuxkart-data.*never be"):
            check_usable("supertuxkart-data", spelled)
    for other in (f"{STK}/tracks/cave/other.ogg", f"{STK}/tracks/cave/not_beneath_the_rabbit_hole.ogg",
                  "beneath_the_rabbit_hole.ogg", f"{STK}/music/race.ogg"):
        check_usable("supertuxkart-data", other)
    check_usable("supertuxkart-data")  # the package itself is usable
    check_usable("another-package", RABBIT)  # the path is reserved in supertuxkart-data only

    write_index([_index_entry("supertuxkart-data", f"{STK}/music/race.ogg")], tmp_path / "ok.csv")
    assert len(read_index(tmp_path / "ok.csv")) == 1
    write_index([_index_entry("supertuxkart-data", f"{STK}/music/race.ogg"), _index_entry("supertuxkart-data", RABBIT)],
                tmp_path / "bad.csv")
    with pytest.raises(ReservedPackageError, match="line 3"):
        read_index(tmp_path / "bad.csv")

    fake, calls = _recording_apt_get(tmp_path)
    with pytest.raises(ReservedPackageError):
        _obtain_debs([_index_entry("supertuxkart-data", f"./{RABBIT}")], tmp_path / "downloads", str(fake), 5.0, [])
    with pytest.raises(ReservedPackageError):
        fetch_soundtracks(tmp_path / "root", [_index_entry("supertuxkart-data", RABBIT)], apt_get=str(fake))
    assert not calls.exists()
    # Another file of the package goes on to apt-get (which fails here: it is offline).
    with pytest.raises(DownloadError, match="supertuxkart-data"):
        _obtain_debs([_index_entry("supertuxkart-data", f"{STK}/music/race.ogg")], tmp_path / "downloads", str(fake), 5.0, [])
    assert "supertuxkart-data=1.0-1" in calls.read_text()


def test_the_refusal_survives_pickling():
    err = ReservedPackageError("0ad-data", None, where="pool.csv line 2")
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ReservedPackageError) and str(again) == str(err) and again.package == "0ad-data"


# ----------------------------------------------------------------------------- indexing a package


def test_index_deb_finds_the_tracks_of_a_package(indexed):
    entries, _ = indexed["demo"]
    by_member = {e.member: e for e in entries}
    assert list(by_member) == sorted(by_member) == [
        "usr/share/games/demo/data/music.pk3!music/cave.ogg",  # inside a zip member
        f"{MUSIC}/battle.ogg", f"{MUSIC}/finale.opus", f"{MUSIC}/intro", f"{MUSIC}/march.mp3", f"{MUSIC}/theme.flac",
    ]
    assert {e.package for e in entries} == {DEMO} and {e.version for e in entries} == {"1.2-3"}
    formats = {m.rsplit("/", 1)[1]: e.format for m, e in by_member.items()}
    assert formats == {"cave.ogg": "vorbis", "battle.ogg": "vorbis", "finale.opus": "opus",
                       "intro": "vorbis", "march.mp3": "mp3", "theme.flac": "flac"}
    seconds = {m.rsplit("/", 1)[1]: e.duration_s for m, e in by_member.items()}
    expected = {"cave.ogg": 32, "battle.ogg": 31, "finale.opus": 35, "intro": 34, "march.mp3": 31,
                "theme.flac": 33}
    assert all(abs(seconds[k] - v) < 0.3 for k, v in expected.items()), seconds
    # Titles: the file's own tag where it has one, else the name.
    assert by_member["usr/share/games/demo/data/music.pk3!music/cave.ogg"].title == "Deep Cave"
    assert by_member[f"{MUSIC}/battle.ogg"].title == "battle"
    assert all(len(e.sha256) == 64 for e in entries) and len({e.sha256 for e in entries}) == len(entries)


def test_index_deb_licences_each_file_from_the_dep5_copyright(indexed):
    licences = {e.member.rsplit("/", 1)[1]: e.licence for e in indexed["demo"][0]}
    assert licences["theme.flac"] == "CC-BY-SA-3.0"  # the later stanza wins over Files: *
    assert licences["battle.ogg"] == licences["intro"] == licences["march.mp3"] == "GPL-2+"
    # A file inside data/music.pk3 matches as data/music/cave.ogg, the zip unpacked in its folder.
    assert licences["cave.ogg"] == "CC0-1.0"


def test_index_deb_says_why_each_other_audio_file_gave_no_track(indexed):
    _, skipped = indexed["demo"]
    why = dict(skipped)
    assert "same track as" in why[f"{MUSIC}/theme.ogg"] and "theme.flac" in why[f"{MUSIC}/theme.ogg"]
    assert "same bytes as" in why[f"{MUSIC}/battle_again.ogg"]
    assert "shorter than 30 s" in why[f"{MUSIC}/jingle.ogg"]
    assert "not a readable zip" in why["usr/share/games/demo/level.data"]
    # Not audio, so neither a track nor a skipped file: the MIDI .wav, the PNG in the zip; the link is not read.
    assert not {"usr/share/games/demo/sfx/splash01.wav", f"{MUSIC}/menu.ogg"} & set(why)
    assert not any("wall.png" in member for member in why)


def test_index_deb_drops_variants_skips_the_reserved_track_unread_and_reads_free_text_copyrights(indexed):
    entries, skipped = indexed["stk"]
    assert [e.member for e in entries] == [f"{STK}/music/battle.ogg", f"{STK}/music/race.ogg"]
    why = dict(skipped)
    assert why[RABBIT] == "reserved (not read)"
    assert "_fast" in why[f"{STK}/music/race_fast.ogg"]
    assert {e.licence for e in entries} == {
        "see copyright: The music is licensed under the Creative Commons Attribution-ShareAlike 3.0 licence."
    }
    assert [e.title for e in entries] == ["battle", "race"]


def test_deduplicate_reports_a_file_shipped_by_two_packages(indexed):
    demo, stk = indexed["demo"][0], indexed["stk"][0]
    kept, dropped = deduplicate(demo + stk)
    assert [(a.track, b.track) for a, b in dropped] == [
        (f"{DEMO}/{MUSIC}/battle.ogg", f"supertuxkart-data/{STK}/music/battle.ogg")
    ]
    assert len(kept) == len(demo) + len(stk) - 1 and f"supertuxkart-data/{STK}/music/race.ogg" in {e.track for e in kept}
    kept_other_way, _ = deduplicate(stk + demo)  # the order given decides which copy stays
    assert f"supertuxkart-data/{STK}/music/battle.ogg" in {e.track for e in kept_other_way}


def test_two_formats_of_one_track_keep_the_lossless_one_and_one_name_in_two_folders_stays():
    found = [debian_pool._Found(member, f"{i}" * 64, seconds, "t", fmt) for i, (member, seconds, fmt) in enumerate([
        ("m/ogg/theme.ogg", 60.0, "vorbis"), ("m/wav/Theme.wav", 60.4, "wav"),  # one track: the WAV stays
        ("songs/a/song.ogg", 90.0, "vorbis"), ("songs/b/song.ogg", 90.2, "vorbis"),  # two mixes, one name
        ("m/late.ogg", 40.0, "vorbis"), ("m/late.mp3", 42.0, "mp3"),  # 2 s apart: two tracks
    ])]
    skipped: list[tuple[str, str]] = []
    kept = debian_pool._deduplicated(found, skipped)
    assert [f.member for f in kept] == ["m/late.mp3", "m/late.ogg", "m/wav/Theme.wav", "songs/a/song.ogg", "songs/b/song.ogg"]
    assert skipped == [("m/ogg/theme.ogg", "the same track as m/wav/Theme.wav in another format")]


def test_index_deb_limits_what_it_reads_into_memory(debs):
    skipped: list[tuple[str, str]] = []
    assert index_deb(debs["stk"], max_member_bytes=1000, skipped=skipped) == []
    assert all("over max_member_bytes=1000" in why for member, why in skipped if member.endswith(("race.ogg", "battle.ogg")))
    with pytest.raises(ValueError, match="min_seconds"):
        index_deb(debs["stk"], min_seconds=-1)


def test_a_package_with_music_but_no_copyright_file_says_what_to_pass(tmp_path, sounds):
    deb = _deb(tmp_path / "lone-music_1_all.deb", "lone-music", "1", {"usr/share/games/lone/a.ogg": sounds["race"]},
               links={"usr/share/doc/lone-music": "lone-game"})
    with pytest.raises(DebError, match="usr/share/doc/lone-music links to lone-game.*copyright_text"):
        index_deb(deb)
    text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Expat\n"
    [track] = index_deb(deb, copyright_text=text)
    assert track.licence == "Expat" and track.member == "usr/share/games/lone/a.ogg"
    # Without music no licence is needed.
    empty = _deb(tmp_path / "no-music_1_all.deb", "no-music", "1", {"usr/share/games/x/readme.txt": b"hello"})
    assert index_deb(empty) == []


# ----------------------------------------------------------------------------- sniffing, timing, licences


def test_audio_is_recognized_by_its_bytes_not_its_name(sounds):
    sniff = debian_pool._sniff
    assert sniff(sounds["theme_ogg"][:4096]) == "vorbis" and sniff(sounds["opus"][:4096]) == "opus"
    assert sniff(sounds["theme_flac"][:4096]) == "flac" and sniff(sounds["mp3"][:4096]) == "mp3"
    wav = io.BytesIO()
    soundfile.write(wav, np.zeros(800, np.float32), RATE, format="WAV")
    assert sniff(wav.getvalue()[:4096]) == "wav"
    assert sniff(b"RIFF\x10\x00\x00\x00RMIDdata") is None  # a RIFF MIDI file
    assert sniff(b"MThd\x00\x00\x00\x06") is None
    assert sniff(b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x80theora") is None  # Ogg video
    # One MPEG frame header alone is not enough (binary data has them by chance); two in a row are.
    frame = bytes([0xFF, 0xFB, 0x90, 0x00])  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417 bytes
    assert sniff(frame + bytes(600)) is None
    assert sniff(frame + bytes(413) + frame + bytes(100)) == "mp3"
    assert sounds["mp3"][:2] == b"\xff\xe3"  # libsndfile writes no ID3 tag: found above by its frames
    assert sniff(b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + frame) == "mp3"  # a tag first


@pytest.mark.parametrize("package, member, dropped", [
    ("fretsonfire-songs-sectoid", "usr/share/games/fretsonfire/data/songs/x/guitar.ogg", True),
    ("fretsonfire-songs-sectoid", "usr/share/games/fretsonfire/data/songs/x/song.ogg", False),
    ("plee-the-bear-data", "usr/share/games/plee-the-bear/music/sequencer/bonus/back.ogg", True),
    ("plee-the-bear-data", "usr/share/games/plee-the-bear/music/castle.ogg", False),
    ("supertuxkart-data", f"{STK}/music/race_fast.ogg", True),
    ("supertuxkart-data", f"{STK}/music/fast_lane.ogg", False),
    ("holotz-castle-data", "usr/share/games/holotz-castle/res/snd/Dungeon_UltraSlow.ogg", True),
    ("holotz-castle-data", "usr/share/games/holotz-castle/res/snd/Dungeon_Slow.ogg", True),
    ("holotz-castle-data", "usr/share/games/holotz-castle/res/snd/Dungeon.ogg", False),
    ("hedgewars-data", "usr/share/games/hedgewars/Data/Music/olympics_sd.ogg", True),
    ("hedgewars-data", "usr/share/games/hedgewars/Data/Music/olympics.ogg", False),
    ("flare-game", "usr/share/games/flare/mods/fantasycore/music/wind_ambient.ogg", True),
    ("other-data", f"{STK}/music/race_fast.ogg", False),  # a rule holds for its own package only
    ("flare-game", "usr/share/games/flare/mods/x/soundfx/environment/rain.ogg", True),  # any package
    ("other-data", "usr/share/games/other/sfx/storm.ogg", True),
    ("noiz2sa-data", "usr/share/games/noiz2sa/sounds/stg0.ogg", False),
    ("supertuxkart-data", f"{STK}/music/farm_f.ogg", True),
    ("supertuxkart-data", f"{STK}/music/farm.ogg", False),
    ("supertuxkart-data", f"{STK}/tracks/black_forest/steamLocomotive.ogg", True),
    ("supertuxkart-data", f"{STK}/tracks/introcutscene2/intro2.ogg", False),
    ("widelands-data", "usr/share/games/widelands/data/sound/animals/coyote_00.ogg", True),
    ("widelands-data", "usr/share/games/widelands/data/music/ingame_01.ogg", False),
    ("btanks-data", "usr/share/games/btanks/data/sounds/ambient/city.ogg", True),
    ("btanks-data", "usr/share/games/btanks/data/tunes/gameboy.ogg", False),
    ("ardentryst", "usr/share/games/ardentryst/Sounds/AMB_Intro_1.ogg", True),
    ("hyperrogue-music", "usr/share/hyperrogue/sounds/tada.ogg", True),
    ("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/music/Ambience.ogg", True),
    ("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/music/menu.ogg", False),
])
def test_the_drop_rules_name_stems_and_variants_only(package, member, dropped):
    assert (debian_pool._dropped_by(package, member) is not None) == dropped


def test_opus_is_timed_by_its_last_granule_when_libsndfile_cannot_open_it(sounds, monkeypatch):
    seconds = debian_pool._ogg_opus_seconds(sounds["opus"])
    assert seconds is not None and abs(seconds - soundfile.info(io.BytesIO(sounds["opus"])).duration) < 0.05
    assert debian_pool._ogg_opus_seconds(sounds["theme_ogg"]) is None

    def cannot_open(*args, **kwargs):
        raise soundfile.LibsndfileError(1, "Format not recognised.")

    monkeypatch.setattr(soundfile, "SoundFile", cannot_open)
    found = debian_pool._probe("m/finale.opus", sounds["opus"], "opus", 30.0)
    assert abs(found.seconds - 35) < 0.05 and found.title == "finale" and found.format == "opus"
    assert "not decodable as vorbis" in debian_pool._probe("m/a.ogg", sounds["race"], "vorbis", 30.0)


def test_member_licence_follows_dep5_and_falls_back_sensibly():
    assert member_licence("usr/share/games/demo/music/theme.ogg", DEP5) == "CC-BY-SA-3.0"
    assert member_licence("usr/share/games/demo/music/unused.ogg", DEP5) == "CC-BY-SA-3.0"  # continuation line
    assert member_licence("usr/share/games/demo/sounds/music/theme.ogg", DEP5) == "CC-BY-SA-3.0"
    assert member_licence("usr/share/games/demo/othermusic/theme.ogg", DEP5) == "GPL-2+"  # a folder boundary
    # marsshooter-data: the source's data/ folder is installed as usr/share/games/marsshooter/.
    mars = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n\n"
            "Files: data/*\n data/audio/interface/*\nLicense: CC-BY-3.0\n\n"
            "Files: data/audio/music/*\n data/audio/menu.ogg\nLicense: CC-BY-SA-3.0\n\nFiles: debian/*\nLicense: GPL-3+\n")
    games = "usr/share/games/marsshooter"
    assert member_licence(f"{games}/audio/music/01_-_Ezer_Ev.ogg", mars) == "CC-BY-SA-3.0"
    assert member_licence(f"{games}/audio/menu.ogg", mars) == "CC-BY-SA-3.0"
    assert member_licence(f"{games}/audio/interface/click.ogg", mars) == "CC-BY-3.0"
    assert member_licence(f"{games}/audio/other/x.ogg", mars) == "GPL-3+"  # data/* and debian/* do not shrink to *
    header_only = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: GPL-3+\n\n"
                   "Files: debian/*\nLicense: GPL-2+\n")
    assert member_licence("usr/share/x/music/a.ogg", header_only) == "GPL-3+"  # no stanza matches: the header
    old_dep5 = "Format-Specification: http://svn.debian.org/wsvn/dep/web/deps/dep5.mdwn?op=file&rev=135\n\nFiles: *\nLicense: BSD-2-clause\n"
    assert member_licence("usr/share/x/a.ogg", old_dep5) == "BSD-2-clause"
    escaped = "Format: x\n\nFiles: *\nLicense: GPL-2+\n\nFiles: music/a\\*b?.ogg\nLicense: CC-BY-3.0\n"
    assert member_licence("usr/share/x/music/a*b1.ogg", escaped) == "CC-BY-3.0"
    assert member_licence("usr/share/x/music/aXb1.ogg", escaped) == "GPL-2+"
    assert member_licence("a.ogg", FREE_TEXT).startswith("see copyright: The music is licensed under the Creative")
    assert member_licence("a.ogg", "Written by someone.\nAll rights given.\n") == "see copyright"
    headed = "Copyright 2008 M.\n\nLicense\n\n  THIS CREATIVE COMMONS PUBLIC LICENSE (CCPL) APPLIES.\n"
    assert member_licence("a.ogg", headed) == "see copyright: THIS CREATIVE COMMONS PUBLIC LICENSE (CCPL) APPLIES."
    assert member_licence("a.ogg", "License\n\nYou may use this licence freely.\n") == "see copyright: You may use this licence freely."


# ----------------------------------------------------------------------------- the pool CSV


def test_the_pool_csv_round_trips(tmp_path, indexed):
    entries = indexed["demo"][0] + indexed["stk"][0]
    write_pool_index(entries, tmp_path / "pool.csv")
    assert (tmp_path / "pool.csv").read_text().splitlines()[0] == ",".join(POOL_COLUMNS)
    assert read_pool_index(tmp_path / "pool.csv") == entries


GOOD_ROW = ["demo", "2:1.1-3", "usr/share/demo/music.pk3!music/a.ogg", "a" * 64, "61.500", "GPL-2+", "A, title", "vorbis"]


@pytest.mark.parametrize("column, value, message", [
    ("package", "Bad Name", "package 'Bad Name' is not a Debian package name"),
    ("version", "", "no version"),
    ("version", "v1", "version 'v1' is not a Debian version"),
    ("member", "../evil.ogg", "member '../evil.ogg' is not a path inside the package"),
    ("member", "/usr/share/a.ogg", "is not a path inside the package"),
    ("member", "x.pk3!../a.ogg", "is not a path inside the package"),
    ("sha256", "xyz", "sha256 'xyz' is not 64 lower-case hexadecimal digits"),
    ("duration_s", "-1", "duration_s '-1' is not a positive finite number"),
    ("duration_s", "nan", "is not a positive finite number"),
    ("duration_s", "long", "duration_s 'long' is not a number of seconds"),
    ("title", "  ", "no title"),
    ("format", "aac", "format 'aac' is not one of flac, wav, opus, vorbis, mp3"),
])
def test_read_pool_index_refuses_invalid_rows_naming_them(tmp_path, column, value, message):
    import csv

    row = list(GOOD_ROW)
    row[POOL_COLUMNS.index(column)] = value
    path = tmp_path / "pool.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([POOL_COLUMNS, GOOD_ROW[:2] + ["usr/share/demo/b.ogg"] + GOOD_ROW[3:], row])
    with pytest.raises(PoolIndexError, match=re.escape(f"{path} line 3: ") + ".*" + re.escape(message)):
        read_pool_index(path)


def test_read_pool_index_refuses_bad_headers_short_rows_repeats_and_reserved_rows(tmp_path):
    import csv

    def write(rows):
        with (tmp_path / "pool.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        return tmp_path / "pool.csv"

    assert read_pool_index(write([POOL_COLUMNS, GOOD_ROW]))[0].duration_s == 61.5
    with pytest.raises(PoolIndexError, match="header must be package,version,member"):
        read_pool_index(write([POOL_COLUMNS[:-1], GOOD_ROW[:-1]]))
    with pytest.raises(PoolIndexError, match="line 2: no format"):
        read_pool_index(write([POOL_COLUMNS, GOOD_ROW[:-1]]))
    with pytest.raises(PoolIndexError, match="line 2: more fields than the header"):
        read_pool_index(write([POOL_COLUMNS, GOOD_ROW + ["extra"]]))
    with pytest.raises(PoolIndexError, match="line 3: demo/.* is already on line 2"):
        read_pool_index(write([POOL_COLUMNS, GOOD_ROW, GOOD_ROW]))
    with pytest.raises(ReservedPackageError, match="line 3: package 'nexuiz-music' is reserved"):
        read_pool_index(write([POOL_COLUMNS, GOOD_ROW, ["nexuiz-music"] + GOOD_ROW[1:]]))
    with pytest.raises(ReservedPackageError, match="line 2: .*beneath_the_rabbit_hole"):
        read_pool_index(write([POOL_COLUMNS, ["supertuxkart-data", "1.4+dfsg-2", RABBIT] + GOOD_ROW[3:]]))


def test_the_module_imports_without_optional_dependencies():
    script = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('soundfile', 'arpy', 'zstandard', 'av'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import s3t.datasets.debian_pool, s3t.datasets.soundtracks\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ----------------------------------------------------------------------------- building the pool


def _fetching_apt_get(folder: Path, debs: dict[str, Path]) -> tuple[Path, Path]:
    """A stand-in apt-get that records each call, 'downloads' the .debs it is given (by NAME=VERSION)
    into its working folder as apt-get would, and fails for any other package."""
    calls = folder / "apt-calls"
    fake = folder / "apt-get"
    cases = "".join(f'  "{name}") cp "{deb}" . ;;\n' for name, deb in debs.items())
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nfor last in "$@"; do :; done\ncase "$last" in\n{cases}'
                    f'  *) echo "E: Can\'t find a source to download version of $last" >&2; exit 100 ;;\nesac\n')
    fake.chmod(0o755)
    return fake, calls


POOL = [(DEMO, "1.2-3"), ("supertuxkart-data", "1.4+dfsg-2")]


def test_build_pool_index_fetches_what_is_missing_reports_what_fails_and_drops_duplicates(tmp_path, debs, indexed):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / debs["stk"].name).write_bytes(debs["stk"].read_bytes())  # already here: not fetched again
    fake, calls = _fetching_apt_get(tmp_path, {f"{DEMO}=1.2-3": debs["demo"]})
    log: list[str] = []
    kept, dropped = debian_pool.build_pool_index([*POOL, ("no-such-music", "1.0-1")], downloads, apt_get=str(fake),
                                                 timeout=5, log=log)
    # Only the missing packages went to apt-get, as NAME=VERSION with no retries.
    assert [line.split()[-1] for line in calls.read_text().splitlines()] == [f"{DEMO}=1.2-3", "no-such-music=1.0-1"]
    assert "Acquire::Retries=0" in calls.read_text()
    assert (downloads / debs["demo"].name).is_file()
    # The one that failed is reported with apt-get's reason, not silently dropped.
    skipped = [line for line in log if line.startswith("skipped ")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped no-such-music=1.0-1: ")
    assert "exited 100" in skipped[0] and "Can't find a source" in skipped[0]
    assert any(line.startswith(f"downloaded {debs['demo'].name}") for line in log)
    assert any(line.startswith(f"indexed {DEMO}=1.2-3: 6 track(s)") for line in log)
    assert any(line.startswith("indexed supertuxkart-data=1.4+dfsg-2: 2 track(s)") for line in log)
    # The same as indexing each .deb (copyright read from inside it) then de-duplicating, in the order given.
    assert (kept, dropped) == deduplicate(indexed["demo"][0] + indexed["stk"][0])
    assert [(a.track, b.track) for a, b in dropped] == [
        (f"{DEMO}/{MUSIC}/battle.ogg", f"supertuxkart-data/{STK}/music/battle.ogg")
    ]
    assert any(line.startswith(f"duplicate supertuxkart-data/{STK}/music/battle.ogg dropped") for line in log)
    assert {e.licence for e in kept if e.package == DEMO} == {"GPL-2+", "CC-BY-SA-3.0", "CC0-1.0"}
    write_pool_index(kept, tmp_path / "pool.csv")
    assert read_pool_index(tmp_path / "pool.csv") == kept
    # A second run finds every .deb in place and asks apt-get nothing more.
    before = calls.read_text()
    assert debian_pool.build_pool_index(POOL, downloads, apt_get=str(fake), timeout=5) == (kept, dropped)
    assert calls.read_text() == before


def test_build_pool_index_refuses_a_reserved_package_before_apt_get_is_called(tmp_path, debs):
    fake, calls = _fetching_apt_get(tmp_path, {f"{DEMO}=1.2-3": debs["demo"], "0ad-data=0.0.26-1": debs["demo"]})
    downloads = tmp_path / "downloads"
    for reserved in ("0ad-data", "Wesnoth-1.16-music", "supertux-data=0.6.3-1"):
        with pytest.raises(ReservedPackageError, match="held-out checks"):
            debian_pool.build_pool_index([(DEMO, "1.2-3"), (reserved, "0.0.26-1")], downloads, apt_get=str(fake))
    assert not calls.exists() and not downloads.exists()  # not even the usable package before it was fetched
    # A reserved package under an innocent file name is refused by its control file, not skipped.
    downloads.mkdir()
    control = tar_bytes([entry("./control", b"Package: nexuiz-music\nVersion: 1.0-1\nArchitecture: all\n")], "xz")
    (downloads / "innocent-music_1.0-1_all.deb").write_bytes(
        ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", b"not xz")]))
    with pytest.raises(ReservedPackageError, match="control file.*nexuiz-music"):
        debian_pool.build_pool_index([("innocent-music", "1.0-1")], downloads, apt_get=None)
    assert debian_pool.POOL_PACKAGES and not any(is_reserved(name) for name, _ in debian_pool.POOL_PACKAGES)


def test_build_pool_index_skips_unreadable_or_mislabelled_debs_and_raises_when_nothing_is_left(tmp_path, debs):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    # Epoch spellings: apt-get's '%3a' and the archive pool's file name without the epoch.
    (downloads / f"{DEMO}_1%3a1.2-3_all.deb").write_bytes(debs["demo"].read_bytes())
    (downloads / "supertuxkart-data_1.4+dfsg-2_all.deb").write_bytes(debs["stk"].read_bytes())
    assert debian_pool.find_pool_deb(downloads, DEMO, "1:1.2-3") == downloads / f"{DEMO}_1%3a1.2-3_all.deb"
    assert debian_pool.find_pool_deb(downloads, "supertuxkart-data", "2:1.4+dfsg-2").name.startswith("supertuxkart")
    assert debian_pool.find_pool_deb(downloads, DEMO, "1.2-4") is None  # never another version
    (downloads / "broken-music_1.0-1_all.deb").write_bytes(b"!<arch>\nnot a deb")
    log: list[str] = []
    packages = [(DEMO, "1:1.2-3"), ("supertuxkart-data", "2:1.4+dfsg-2"), ("broken-music", "1.0-1"),
                ("absent-music", "1.0-1")]
    with pytest.raises(DownloadError, match=r"no package of the pool(.|\n)*broken-music(.|\n)*absent-music"):
        debian_pool.build_pool_index(packages, downloads, apt_get=None, log=log)
    why = {line.split(":", 1)[0]: line for line in log if line.startswith("skipped ")}
    # The control file says 1.2-3, not the 1:1.2-3 asked for: skipped, as a stale file would be.
    assert "holds demo-pool-data=1.2-3" in why[f"skipped {DEMO}=1"]
    assert "holds supertuxkart-data=1.4+dfsg-2" in why["skipped supertuxkart-data=2"]
    assert "could not be indexed" in why["skipped broken-music=1.0-1"]
    assert "no apt-get on this machine" in why["skipped absent-music=1.0-1"]
    with pytest.raises(ValueError, match="twice"):
        debian_pool.build_pool_index([(DEMO, "1.2-3"), (DEMO, "1.2-4")], downloads, apt_get=None)


def test_the_pool_packages_are_the_facts_files_table():
    assert len(debian_pool.POOL_PACKAGES) == 39 == len(dict(debian_pool.POOL_PACKAGES))
    assert debian_pool.POOL_PACKAGES[0] == ("ufoai-music", "2.5-2")
    assert ("widelands-data", "2:1.1-3") in debian_pool.POOL_PACKAGES
    facts = Path(__file__).resolve().parents[2] / "shared" / "data" / "debian-music.md"
    if facts.is_file():  # the facts file lives beside the checkout, not in it
        table = facts.read_text().split("## Usable packages", 1)[1].split("\n\n", 2)[1]
        rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
        assert tuple((n.strip(), v.strip()) for n, v in rows) == debian_pool.POOL_PACKAGES


def test_the_stage_index_pool_mode_reports_every_package_it_could_not_fetch(tmp_path):
    """`stages/download.py --index-pool OUT.csv --downloads DIR` with an apt-get that fetches nothing:
    exit 1, every package named with apt-get's reason, no CSV written."""
    import os
    import shutil

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "stages").mkdir()
    for name in ("_common.py", "download.py"):
        shutil.copy(root / "stages" / name, tmp_path / "stages" / name)
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    fake, calls = _recording_apt_get(tmp_path / "stages")
    kept = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    out = tmp_path / "pool.csv"
    done = subprocess.run(
        [sys.executable, str(tmp_path / "stages" / "download.py"), "--index-pool", str(out), "--downloads",
         str(tmp_path / "debs")], env={"PATH": str(tmp_path / "stages"), **kept}, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 1, done.stderr
    assert "no package of the pool could be fetched" in done.stderr and not out.exists()
    assert len(calls.read_text().splitlines()) == 39
    for name, version in debian_pool.POOL_PACKAGES:
        assert f"skipped {name}={version}: " in done.stdout


def test_pool_credits_group_each_packages_tracks_by_licence(tmp_path, indexed):
    kept, _ = deduplicate(indexed["demo"][0] + indexed["stk"][0])
    text = debian_pool.pool_credits(kept)
    assert text.startswith("## Debian pool\n") and "2 Debian bookworm packages (7 tracks)" in text
    demo = text.split(f"### {DEMO} 1.2-3\n", 1)[1].split("###", 1)[0]
    assert '- GPL-2+ (4 tracks): "battle"; "finale"; "intro"; "march"' in demo
    assert '- CC-BY-SA-3.0 (1 track): "theme"' in demo and '- CC0-1.0 (1 track): "Deep Cave"' in demo
    assert "### supertuxkart-data 1.4+dfsg-2\n" in text and '(1 track): "race"' in text
    debian_pool.write_pool_credits(kept, tmp_path / "CREDITS.md")
    assert (tmp_path / "CREDITS.md").read_text() == text
    with pytest.raises(ReservedPackageError):
        debian_pool.write_pool_credits([*kept, _pool_entry("supertuxkart-data", RABBIT)], tmp_path / "bad.md")
    assert not (tmp_path / "bad.md").exists()


# ----------------------------------------------------------------------------- extracting indexed members


def test_extract_members_writes_each_indexed_file_also_from_inside_a_zip(tmp_path, debs, indexed):
    import hashlib

    entries = indexed["demo"][0]
    assert any("!" in e.member for e in entries)  # music.pk3!music/cave.ogg
    written = debian_pool.extract_members(debs["demo"], [e.member for e in entries], tmp_path / "out")
    assert list(written) == [e.member for e in entries]
    for e in entries:
        assert hashlib.sha256(written[e.member].read_bytes()).hexdigest() == e.sha256
        assert written[e.member] == tmp_path / "out" / e.member
    # Only the requested files: the zip's texture and the zip itself are not left behind.
    left = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert left == sorted(e.member for e in entries)


def test_extract_members_refuses_a_reserved_file_missing_zip_members_and_unsafe_zip_paths(tmp_path, debs):
    with pytest.raises(ReservedPackageError):
        debian_pool.extract_members(debs["stk"], [RABBIT], tmp_path / "stk")
    assert not (tmp_path / "stk").exists()
    with pytest.raises(DebError, match="music/absent.ogg is not in its zip member"):
        debian_pool.extract_members(debs["demo"], ["usr/share/games/demo/data/music.pk3!music/absent.ogg"], tmp_path / "a")
    with pytest.raises(DebError, match="unsafe path inside the zip"):
        debian_pool.extract_members(debs["demo"], ["usr/share/games/demo/data/music.pk3!../../x.ogg"], tmp_path / "b")
    with pytest.raises(DebError, match="unreadable"):
        debian_pool.extract_members(debs["demo"], ["usr/share/games/demo/level.data!x.ogg"], tmp_path / "c")
