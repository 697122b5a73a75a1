"""Debian's free music as a pre-training pool: the reserved packages, and an index of any ``.deb``.

Issue 31 widens pre-training from the eleven packages of :mod:`s3t.datasets.soundtracks` to the
free music of Debian bookworm (30.8 h in 167 packages). The facts this module follows were
measured in ``shared/data/debian-music.md`` (2026-12-07); read it before changing a rule here.

Three parts:

* **Reserved packages, refused by name.** Ten packages (:data:`RESERVED_PACKAGES`) and one file of
  supertuxkart-data (:data:`RESERVED_MEMBERS`, the same track as in a reserved package) are kept
  for held-out checks of the default model: they must never be fetched, indexed, pre-trained or
  evaluated on. :func:`check_usable` raises :class:`ReservedPackageError` for them; every entry
  point of :mod:`s3t.datasets.soundtracks` that could fetch or read a package calls it first, as
  do :func:`index_deb`, :func:`write_pool_index` and :func:`read_pool_index`.
* **A streaming indexer** (:func:`index_deb`): one forward pass over a package's ``data.tar``
  (:mod:`s3t.datasets.debian`'s readers), reading into memory only the files whose first bytes
  are audio, and the zip archives games hide music in; nothing is written to disk but a zip
  member over ``max_member_bytes`` (spooled to a temporary file, which zip reading needs).
  Each track becomes a :class:`PoolEntry`: package, version, member path, sha256, duration,
  licence (from the package's DEP-5 copyright file, per file), title and format.
  :func:`deduplicate` drops files shipped by two packages; :func:`write_pool_index` /
  :func:`read_pool_index` store the pool as CSV (:data:`POOL_COLUMNS`).
* **Building the pool** (:func:`build_pool_index`): the facts file's 39 usable packages with at
  least 10 minutes of music (:data:`POOL_PACKAGES`) fetched with ``apt-get download`` where
  missing, indexed, de-duplicated across packages; a package that cannot be fetched or read is
  skipped and said so. ``python stages/download.py --index-pool OUT.csv`` runs it;
  :func:`pool_credits` gives the pool's attribution from the index.

Choices where the facts file leaves room (each tested):

* Names are compared in lower case without an apt qualifier (``0ad-data=1.0``, ``0ad-data:all``,
  ``0ad-data/bookworm`` are ``0ad-data``), so a refusal cannot be dodged by spelling; other
  names, however close (``0ad``, ``supertux-data2``), pass.
* The reserved member is written in the facts file as ``games/supertuxkart/...`` while the
  package installs it under ``usr/share/games/supertuxkart/...``: a member is reserved when its
  path (leading ``./`` or ``/`` removed) is the reserved path or ends with it after a ``/`` or
  ``!``. Inside :func:`index_deb` a reserved member is skipped unread (the rest of
  supertuxkart-data is usable); in an index it is refused.
* Audio is recognized by magic bytes, never by name: Ogg whose first packet is Vorbis, Opus or
  FLAC (Theora video, Speex: not indexed), native FLAC, RIFF/WAVE (a RIFF MIDI, or a ``.wav``
  holding ``MThd``, is not audio), MP3 by an ID3v2 tag or by two consecutive MPEG layer III frame
  headers (one 11-bit sync alone is too common in binary data). Headerless PCM
  (xblast-tnt-musics) cannot be recognized and is not indexed.
* Zip archives: members whose name ends in ``.pk3``, ``.love``, ``.zip`` or ``.data``, or that
  start with ``PK\\x03\\x04``; their files get the same checks and are named
  ``<archive path>!<path in the zip>``. Zips inside zips, and Qt ``.rcc`` resources
  (gcompris-qt-data), are not opened. Files with an unsafe name inside a zip (absolute, ``..``)
  are skipped and reported, while an unsafe name in ``data.tar`` refuses the package, as
  :func:`s3t.datasets.debian.extract_deb_members` would.
* Duration is the header's (frames / sample rate, as the facts file measured), not the audible
  length :func:`s3t.datasets.soundtracks.index_package` decodes for: decoding 30 h of Vorbis to
  index would take longer than fetching it. Ogg Opus that libsndfile cannot open is timed by its
  last page's granule position less the pre-skip, at 48 kHz. A track lasts at least 30 s
  (``min_seconds``); every such file counts, in or out of a music folder (the facts file counted
  only files in music folders or packages or named as music; sound effects rarely last 30 s, and
  those in sound-effect folders are dropped by rule, below).
* De-duplication inside a package: identical bytes keep the first path in sorted order; the same
  file name stem (case-insensitive) in a *different* format within 1 s is one track in two
  formats and keeps the lossless one (FLAC, WAV, then Opus, Vorbis, MP3). Two same-format files
  with one name in two folders are different bytes, so both stay (Frets on Fire names every mix
  ``song.ogg``). Across packages, :func:`deduplicate` keeps the first in the order given.
* Stems and variants are dropped by a rule table (:data:`DROP_RULES`): the facts file's
  pitfalls (Frets on Fire guitar stems, Plee the Bear's ``music/sequencer/`` stems, SuperTuxKart
  ``*_fast``, Holotz's Castle ``_Slow``/``_UltraSlow``, Hedgewars ``olympics_sd``), the
  flare-game ``wind_ambient`` loop its table excludes, and in any package files under a
  ``sfx/``, ``soundfx/`` or ``sound_effects/`` folder (ambience loops such as flare-game's rain
  last over 30 s; with this rule flare-game gives the facts file's 11 tracks).
* Licence: the ``License`` short name of the last DEP-5 ``Files`` stanza matching the file, else
  the header's ``License``. DEP-5 patterns are source-tree paths while members are installed
  paths, so a pattern matches the *end* of the path at a folder boundary (``music/*`` matches
  ``usr/share/games/x/music/a.ogg``), also without its leading folders while a folder and a file
  part remain (marsshooter-data's ``data/audio/music/*`` is installed as
  ``usr/share/games/marsshooter/audio/music/*``; ``data/*`` or ``debian/*`` never shrink to
  ``*``); a file inside a zip is also matched as if the zip were
  unpacked in its folder (game engines mount ``base/0music.pk3`` as ``base/``). A copyright
  file in another format gives ``see copyright: <its first line naming a licence>`` (the full
  text stays the reference: such files are read by a person before a release).
* Title: the file's own title tag (Vorbis comment, FLAC, ID3) when it has one, else its file
  name stem with ``_`` and ``-`` as spaces.
"""

from __future__ import annotations

import csv
import functools
import glob
import hashlib
import io
import math
import os
import posixpath
import re
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Iterable, Sequence

from s3t.audio import MAX_SOURCE_RATE, MIN_SOURCE_RATE
from s3t.datasets.debian import DebError, _find_member, _member_tar, _open_deb, deb_info
from s3t.datasets.download import CHUNK_BYTES, ArchiveError, DownloadError, _check_member_name

__all__ = [
    "DROP_RULES",
    "FORMATS",
    "POOL_COLUMNS",
    "POOL_PACKAGES",
    "RESERVED_MEMBERS",
    "RESERVED_PACKAGES",
    "DropRule",
    "PoolEntry",
    "PoolIndexError",
    "ReservedPackageError",
    "build_pool_index",
    "check_usable",
    "deduplicate",
    "extract_members",
    "find_pool_deb",
    "index_deb",
    "is_reserved",
    "member_licence",
    "pool_credits",
    "read_pool_index",
    "write_pool_credits",
    "write_pool_index",
]

FACTS = "shared/data/debian-music.md"
"""Where the reserved list and the pitfalls come from (named in error messages)."""

RESERVED_PACKAGES = frozenset(
    {
        "0ad-data", "berusky2-data", "blobwars-data", "megaglest-data", "nexuiz-music",
        "redeclipse-data", "supertux-data", "unknown-horizons", "warzone2100-music", "wesnoth-1.16-music",
    }
)
"""Packages kept for held-out checks of the default model: never fetched, indexed or used."""

RESERVED_MEMBERS = frozenset({("supertuxkart-data", "games/supertuxkart/data/tracks/cave/beneath_the_rabbit_hole.ogg")})
"""(package, path) of files of usable packages that also ship in a reserved one."""

POOL_PACKAGES: tuple[tuple[str, str], ...] = (
    ("ufoai-music", "2.5-2"),
    ("planetblupi-music-ogg", "1.14.2-3"),
    ("naev-data", "0.8.2-1"),
    ("widelands-data", "2:1.1-3"),
    ("hedgewars-data", "1.0.2-6"),
    ("colobot-common-sounds", "0.2.0-2"),
    ("singularity-music", "007-2"),
    ("marsshooter-data", "0.7.6-7"),
    ("supertuxkart-data", "1.4+dfsg-2"),
    ("freedroidrpg-data", "1.0-1"),
    ("drascula-music", "1.0+ds4-2"),
    ("flare-game", "1.14-1"),
    ("trackballs-data", "1.3.4-1"),
    ("pushover-data", "0.0.5+git20180909-4"),
    ("starfighter-data", "2.4-1"),
    ("warmux-data", "1:11.04.1+repack2-4"),
    ("wizznic-data", "0.9.9+dfsg-1"),
    ("openclonk-data", "8.1-3"),
    ("fillets-ng-data", "1.0.1-1.1"),
    ("davegnukem-data", "1.0.3-4"),
    ("hyperrogue-music", "12.0q-1"),
    ("enigma-data", "1.20-dfsg.1-2.2"),
    ("zaz-data", "1.0.1-1"),
    ("asc-music", "1.3-6"),
    ("freecol", "1.0.0-1"),
    ("ardentryst", "1.71-9"),
    ("freedink-data", "1.08.20190120-2"),
    ("wordwarvi-sound", "1.0.4-2"),
    ("fretsonfire-songs-sectoid", "1.dfsg-3.1"),
    ("fretsonfire-songs-muldjord", "2.dfsg-2.1"),
    ("lordsawar-data", "0.3.2+frogknows-1"),
    ("adonthell-data", "0.3.8-1"),
    ("frozen-bubble-data", "2.212-11"),
    ("xmoto-data", "0.6.1+repack-9"),
    ("btanks-data", "0.9.8083-9"),
    ("openarena-088-data", "0.8.8-12"),
    ("freeorion-data", "0.4.10.2-1"),
    ("miceamaze", "4.2.1-3+b1"),
    ("noiz2sa-data", "0.51a-13"),
)
"""(package, version) of the 39 usable packages with at least 10 minutes of music, as the facts
file's table lists them (largest first): what :func:`build_pool_index` indexes by default."""

FORMATS = ("flac", "wav", "opus", "vorbis", "mp3")
"""Audio formats :func:`index_deb` recognizes, in order of preference between two formats of one track."""

ZIP_SUFFIXES = (".pk3", ".love", ".zip", ".data")
"""Member names opened as zip archives whatever their first bytes (they may be empty or odd zips)."""

MIN_SECONDS = 30.0
"""Shortest track in seconds (the facts file's rule)."""

TWIN_SECONDS = 1.0
"""Two formats of one stem whose durations differ by at most this many seconds are one track."""

MAX_MEMBER_BYTES = 64 * 2**20
"""Largest audio file read into memory (64 MiB: over an hour of Vorbis)."""

MAX_ARCHIVE_BYTES = 2**30
"""Largest zip member opened (ufoai-music's 0music.pk3 holds 210 MB)."""

_HEAD_BYTES = 4096  # enough for an Ogg first page's identification packet and two MP3 frames
_COPYRIGHT_MAX_BYTES = 4 * 2**20  # read of a copyright file; real ones are at most a few hundred KiB
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ReservedPackageError(ValueError):
    """A reserved package (or file) was named where it would be fetched, indexed or used.

    Attributes:
        package: the name as given.
        member: the reserved file's path, or None when the whole package is reserved.
    """

    def __init__(self, package: str, member: str | None = None, *, where: str = "") -> None:
        self.package, self.member, self.where = package, member, where
        what = f"{member!r} of {package!r}" if member is not None else f"package {package!r}"
        source = f"{where}: " if where else ""
        super().__init__(
            f"{source}{what} is reserved: it is kept for held-out checks of the default model and must never be "
            f"fetched, indexed or used (see 'Reserved' in {FACTS}). Remove it from the packages or index you gave"
        )

    def __reduce__(self):
        # Keeps the keyword-carrying constructor working across pickling (worker processes).
        return (_reserved_error, (self.package, self.member, self.where))


def _reserved_error(package: str, member: str | None, where: str) -> ReservedPackageError:
    return ReservedPackageError(package, member, where=where)


def _bare_name(package: str) -> str:
    """``package`` in lower case without an apt qualifier (``=version``, ``:arch``, ``/release``)."""
    return re.split(r"[=:/]", package.strip(), maxsplit=1)[0].lower()


def _bare_member(member: str) -> str:
    """``member`` without leading ``./`` or ``/`` and doubled slashes."""
    return posixpath.normpath(re.sub(r"^(\./|/)+", "", member.strip()) or ".")


def is_reserved(package: str, member: str | None = None) -> bool:
    """Whether ``package`` is reserved, or ``member`` (a path inside it) is a reserved file of it."""
    name = _bare_name(package)
    if name in RESERVED_PACKAGES:
        return True
    if member is None:
        return False
    path = _bare_member(member)
    return any(
        name == owner and re.search(rf"(^|[/!]){re.escape(reserved)}$", path) is not None
        for owner, reserved in RESERVED_MEMBERS
    )


def check_usable(package: str, member: str | None = None, *, where: str = "") -> None:
    """Refuse a reserved package, or a reserved file ``member`` of a usable one.

    Args:
        package: a Debian package name (an apt qualifier such as ``=VERSION`` is ignored).
        member: a path inside the package, or None to check the package only.
        where: what named it (e.g. ``"pool.csv line 7"``), for the message.

    Raises:
        ReservedPackageError: the package or the file is reserved.
    """
    if _bare_name(package) in RESERVED_PACKAGES:
        raise ReservedPackageError(package, where=where)
    if member is not None and is_reserved(package, member):
        raise ReservedPackageError(package, member, where=where)


# ----------------------------------------------------------------------------- entries and rules


@dataclass(frozen=True)
class PoolEntry:
    """One track of the pre-training pool, as :func:`index_deb` finds it and the pool CSV stores it."""

    package: str
    version: str
    member: str  # path inside the package; "<archive>!<path in the zip>" for a file inside a zip member
    sha256: str  # of the audio file's bytes
    duration_s: float  # seconds, from the file's header (frames / sample rate)
    licence: str  # the DEP-5 short name, or "see copyright: ..."
    title: str
    format: str  # one of FORMATS

    @property
    def track(self) -> str:
        """The track's id, ``<package>/<member>``."""
        return f"{self.package}/{self.member}"


POOL_COLUMNS = tuple(f.name for f in fields(PoolEntry))
"""Columns of the pool CSV, in :class:`PoolEntry`'s field order."""


@dataclass(frozen=True)
class DropRule:
    """Audio of a package whose name fully matches ``packages`` and whose member path matches
    ``member`` (searched, case-insensitive) is not a track of its own: ``why`` says what it is."""

    packages: str
    member: str
    why: str


DROP_RULES = (
    DropRule(r"fretsonfire-songs-.+", r"(^|/)(?!song\.ogg$)[^/]+$", "a Frets on Fire stem (the mix is song.ogg)"),
    DropRule(r"plee-the-bear-data", r"(^|/)music/sequencer/", "a Plee the Bear sequencer stem"),
    # farm_f.ogg is the seventh of the facts file's seven fast variants (farm.ogg sped up: 66 s vs 73 s).
    DropRule(r"supertuxkart-data", r"_(fast|f)\.[^/]+$", "a SuperTuxKart *_fast tempo variant"),
    DropRule(r"supertuxkart-data", r"(^|/)(steamLocomotive|nolok_speech)\.[^/]+$",
             "a SuperTuxKart track's sound effect or speech, not music"),
    DropRule(r"holotz-castle-data", r"_(ultra)?slow\.[^/]+$", "a Holotz's Castle _Slow/_UltraSlow tempo variant"),
    DropRule(r"hedgewars-data", r"(^|/)olympics_sd\.[^/]+$", "the Hedgewars sudden-death variant"),
    DropRule(r"flare-game", r"(^|/)wind_ambient\.[^/]+$", "a flare-game ambience loop, not music"),
    # Found by indexing the 39 packages of the facts table (2026-12-07): sound effects and ambience
    # loops of 30 s and more outside music folders, which the facts table did not count.
    DropRule(r"widelands-data", r"(^|/)sound/animals/", "a Widelands animal sound, not music"),
    DropRule(r"hyperrogue-music", r"(^|/)sounds/tada\.[^/]+$", "a HyperRogue sound effect, not music"),
    DropRule(r"ardentryst", r"(^|/)sounds/amb_[^/]+$", "an Ardentryst ambience loop, not music"),
    DropRule(r"btanks-data", r"(^|/)sounds/ambient/", "a Battle Tanks ambience loop, not music"),
    # Found by decoding every task track of the pool (s3t.datasets.soundtracks._audible_seconds): two
    # 84 s files in Colobot's music folder hold 20 s of sound and a minute of digital silence, so
    # their later clips are silent (the soundtracks index left them out by audible length).
    DropRule(r"colobot-common-sounds", r"(^|/)music01[01]\.[^/]+$", "a Colobot jingle: 20 s of sound, then silence"),
    # Found by cutting the whole pool into clips: two Trackballs Ogg files end without an end-of-stream
    # page, which s3t.audio refuses as truncated.
    DropRule(r"trackballs-data", r"(^|/)tb_(design|genesis)\.ogg$", "a truncated Ogg stream (no end-of-stream page)"),
    # In its music folder, but left out of the facts table's 17 tracks (the only two it leaves out).
    DropRule(r"freedroidrpg-data", r"(^|/)(Ambience|AmbientBattle)\.[^/]+$", "a FreedroidRPG ambience loop"),
    # Any package: ambience loops of 30 s and more lie in sound-effect folders (flare-game's rain and
    # wind); no music of the facts file's table does. Not "sounds/": noiz2sa keeps its music there.
    DropRule(r".+", r"(^|/)(sfx|soundfx|sound_?effects)/", "in a sound-effects folder, not music"),
)
"""Stems and variants the facts file names (its "Pitfalls seen" and notes)."""


def _dropped_by(package: str, member: str) -> str | None:
    for rule in DROP_RULES:
        if re.fullmatch(rule.packages, package) and re.search(rule.member, member, re.IGNORECASE):
            return rule.why
    return None


# ----------------------------------------------------------------------------- sniffing and timing

_MP3_KBPS = {True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}  # MPEG-1 / MPEG-2 and 2.5
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _mp3_frame_bytes(header: bytes) -> int:
    """Length in bytes of the MPEG layer III frame that starts with ``header`` (4 bytes); 0 if none does."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return 0
    version, layer = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    kbps_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    # Reserved version, not layer III, free-format or bad bitrate, reserved sample rate.
    if version == 1 or layer != 1 or kbps_index in (0, 15) or rate_index == 3:
        return 0
    mpeg1 = version == 3
    return (144 if mpeg1 else 72) * _MP3_KBPS[mpeg1][kbps_index] * 1000 // _MP3_RATES[version][rate_index] + padding


def _sniff(head: bytes) -> str | None:
    """The audio format (one of :data:`FORMATS`) of a file starting with ``head``, or None."""
    if head.startswith(b"OggS") and len(head) >= 27:
        # The first page carries only the codec's identification packet, after the segment table.
        packet = head[27 + head[26]:]
        for magic, fmt in ((b"\x01vorbis", "vorbis"), (b"OpusHead", "opus"), (b"\x7fFLAC", "flac")):
            if packet.startswith(magic):
                return fmt
        return None
    if head.startswith(b"fLaC"):
        return "flac"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3"):
        return "mp3"
    frame = _mp3_frame_bytes(head[:4])
    if frame and _mp3_frame_bytes(head[frame:frame + 4]):
        return "mp3"
    return None


def _ogg_opus_seconds(data: bytes) -> float | None:
    """Length of an Ogg Opus stream: the last page's granule position (48 kHz samples) less the
    OpusHead pre-skip; None when no page of the stream states one."""
    start = data.find(b"OggS")
    head = data.find(b"OpusHead")
    if start < 0 or head < 0 or len(data) < head + 12 or len(data) < start + 27:
        return None
    serial = data[start + 14:start + 18]
    pre_skip = struct.unpack_from("<H", data, head + 10)[0]
    end = len(data)
    while (page := data.rfind(b"OggS", 0, end)) >= 0:
        # "OggS" may occur inside a packet: a page has version 0 and the stream's serial number.
        if page + 27 <= len(data) and data[page + 4] == 0 and data[page + 14:page + 18] == serial:
            granule = struct.unpack_from("<q", data, page + 6)[0]
            if granule >= 0:  # -1: no packet ends on this page
                return max(0, granule - pre_skip) / 48000
        end = page
    return None


@dataclass(frozen=True)
class _Found:
    """An audio file that passed the checks, before de-duplication and licensing."""

    member: str
    sha256: str
    seconds: float
    title: str
    format: str


def _stem(member: str) -> str:
    """The file name of ``member`` (or of its path inside a zip) without its extension."""
    return posixpath.splitext(posixpath.basename(member.rsplit("!", 1)[-1]))[0]


def _stem_title(member: str) -> str:
    stem = _stem(member)
    return " ".join(re.split(r"[_\-\s]+", stem)).strip() or stem


def _probe(member: str, data: bytes, fmt: str, min_seconds: float) -> _Found | str:
    """The checked track held in ``data``, or why it is not one."""
    import soundfile

    title = ""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            frames, rate = sound.frames, sound.samplerate
            title = " ".join((sound.title or "").split())
    except soundfile.SoundFileError as err:
        opus = _ogg_opus_seconds(data) if fmt == "opus" else None
        if opus is None:
            return f"not decodable as {fmt}: {err}"
        frames, rate = round(opus * 48000), 48000
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        return f"sample rate {rate} Hz outside [{MIN_SOURCE_RATE}, {MAX_SOURCE_RATE}]"
    seconds = frames / rate
    if not seconds >= min_seconds:
        return f"{seconds:.1f} s, shorter than {min_seconds:g} s"
    return _Found(member, hashlib.sha256(data).hexdigest(), seconds, title or _stem_title(member), fmt)


# ----------------------------------------------------------------------------- licences


def _paragraphs(text: str) -> list[dict[str, str]]:
    """The paragraphs of an RFC 822-style file: lower-case field name -> value, continuation lines
    joined with newlines."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                current[key] += "\n" + line.strip()
        else:
            name, colon, value = line.partition(":")
            # A line without a field name (a comment, stray text) belongs to no field.
            if colon and name.strip() and not re.search(r"\s", name.strip()):
                key = name.strip().lower()
                current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


@functools.lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A DEP-5 ``Files`` pattern (``*`` any text including ``/``, ``?`` one character, ``\\`` escapes)
    as a regex matching an installed path that ends with it at a folder boundary, or with the
    pattern less its leading folders while a folder and a file part remain (source
    ``data/audio/music/*`` is installed as ``usr/share/games/marsshooter/audio/music/*``)."""
    pattern = re.sub(r"^(\./|/)+", "", pattern)
    if pattern.endswith("/"):
        pattern += "*"
    parts = []
    for part in pattern.split("/"):
        body, i = [], 0
        while i < len(part):
            ch = part[i]
            if ch == "\\" and i + 1 < len(part):
                body.append(re.escape(part[i + 1]))
                i += 1
            elif ch == "*":
                body.append(".*")
            elif ch == "?":
                body.append(".")
            else:
                body.append(re.escape(ch))
            i += 1
        parts.append("".join(body))
    tails = ["/".join(parts[i:]) for i in range(max(1, len(parts) - 1))]
    return re.compile(r"(?:.*/)?(?:" + "|".join(tails) + ")", re.DOTALL)


def _licence_paths(member: str) -> list[str]:
    """The paths a file is matched as: itself, or for ``a/b.pk3!c/d.ogg``: ``a/c/d.ogg`` (the zip
    unpacked in its folder), the whole name and the zip."""
    member = _bare_member(member)
    if "!" not in member:
        return [member]
    archive, inner = member.split("!", 1)
    return [posixpath.join(posixpath.dirname(archive), inner), member, archive]


_NAMED_LICENCE = re.compile(
    r"\bGPL|General Public|creative commons|\bCC[- ]BY|\bCC0\b|public domain|\bBSD\b|\bMIT\b|\bExpat\b|"
    r"\bArtistic\b|\bApache\b|\bzlib\b|\bISC\b|\bOFL\b",
    re.IGNORECASE,
)
"""A line naming a licence, preferred to one that only says "License" (often a bare heading)."""
_ANY_LICENCE = re.compile(r"licen[cs]", re.IGNORECASE)


def member_licence(member: str, copyright_text: str) -> str:
    """The licence of the file ``member`` (a path inside the package) under the package's
    ``usr/share/doc/<package>/copyright`` text (see the module docstring for the matching rules).

    Returns:
        The ``License`` short name of the last DEP-5 ``Files`` stanza matching the file, else the
        header's; for a copyright file not in DEP-5 format (or a stanza without a name),
        ``"see copyright"`` plus its first line naming a licence (GPL, Creative Commons, ...), else
        its first line of three words or more saying "licence", if any.
    """
    paragraphs = _paragraphs(copyright_text)
    header = paragraphs[0] if paragraphs else {}
    if "format" in header or "format-specification" in header:
        paths = _licence_paths(member)
        chosen = header
        for stanza in paragraphs[1:]:
            patterns = stanza.get("files", "").split()
            if any(_glob_regex(p).fullmatch(path) for p in patterns for path in paths):
                chosen = stanza
        name = chosen.get("license", "").split("\n", 1)[0].strip()
        if name:
            return name
    lines = [ln.strip() for ln in copyright_text.splitlines()]
    line = next((ln for ln in lines if _NAMED_LICENCE.search(ln)), "") or next(
        (ln for ln in lines if _ANY_LICENCE.search(ln) and len(ln.split()) > 2), ""
    )
    return f"see copyright: {line[:120]}" if line else "see copyright"


# ----------------------------------------------------------------------------- indexing a package


@dataclass
class _Scan:
    """What one pass over a package gathers."""

    package: str
    min_seconds: float
    max_member_bytes: int
    found: list[_Found]
    skipped: list[tuple[str, str]]

    def check_audio(self, member: str, head: bytes, rest: IO[bytes], size: int) -> None:
        """Check one file (``head`` its first bytes, ``rest`` the stream after them, ``size`` its bytes)."""
        fmt = _sniff(head)
        if fmt is None:
            return
        why = _dropped_by(self.package, member)
        if why is not None:
            self.skipped.append((member, why))
        elif size > self.max_member_bytes:
            self.skipped.append((member, f"{size} bytes, over max_member_bytes={self.max_member_bytes}"))
        else:
            data = head + rest.read(self.max_member_bytes + 1 - len(head))
            # A zip's size field may understate what its data holds.
            if len(data) > self.max_member_bytes:
                self.skipped.append((member, f"over max_member_bytes={self.max_member_bytes}"))
                return
            probed = _probe(member, data, fmt, self.min_seconds)
            if isinstance(probed, str):
                self.skipped.append((member, probed))
            else:
                self.found.append(probed)

    def check_zip(self, archive: str, fileobj: IO[bytes]) -> None:
        """Check every file of the zip archive ``archive`` (a member of the package) read from ``fileobj``."""
        import zipfile
        import zlib

        errors = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)
        try:
            opened = zipfile.ZipFile(fileobj)
        except errors as err:
            self.skipped.append((archive, f"not a readable zip archive: {err}"))
            return
        with opened:
            for info in opened.infolist():
                if info.is_dir():
                    continue
                name = f"{archive}!{info.filename}"
                if info.filename.startswith(("/", "\\")) or ".." in re.split(r"[\\/]", info.filename):
                    self.skipped.append((name, "unsafe path inside the zip (absolute or '..')"))
                    continue
                if is_reserved(self.package, name):
                    self.skipped.append((name, "reserved (not read)"))
                    continue
                if info.flag_bits & 0x1:
                    # Encrypted: free game data never needs a password, and zipfile would ask for one.
                    self.skipped.append((name, "encrypted inside the zip"))
                    continue
                try:
                    # An unknown compression method raises NotImplementedError.
                    with opened.open(info) as inner:
                        self.check_audio(name, inner.read(_HEAD_BYTES), inner, info.file_size)
                except errors as err:
                    self.skipped.append((name, f"unreadable inside the zip: {err}"))


def _deduplicated(found: list[_Found], skipped: list[tuple[str, str]]) -> list[_Found]:
    """``found`` without repeated bytes and without second formats of one track (module docstring)."""
    kept: list[_Found] = []
    by_sha: dict[str, str] = {}
    for f in sorted(found, key=lambda f: f.member):
        if f.sha256 in by_sha:
            skipped.append((f.member, f"the same bytes as {by_sha[f.sha256]}"))
            continue
        by_sha[f.sha256] = f.member
        stem = _stem(f.member).lower()
        twin = next(
            (i for i, k in enumerate(kept)
             if k.format != f.format and abs(k.seconds - f.seconds) <= TWIN_SECONDS and _stem(k.member).lower() == stem),
            None,
        )
        if twin is None:
            kept.append(f)
        elif FORMATS.index(f.format) < FORMATS.index(kept[twin].format):
            skipped.append((kept[twin].member, f"the same track as {f.member} in another format"))
            kept[twin] = f
        else:
            skipped.append((f.member, f"the same track as {kept[twin].member} in another format"))
    return sorted(kept, key=lambda f: f.member)


def index_deb(
    deb: str | os.PathLike[str],
    *,
    copyright_text: str | None = None,
    min_seconds: float = MIN_SECONDS,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    skipped: list[tuple[str, str]] | None = None,
) -> list[PoolEntry]:
    """The tracks of one Debian package, read in one streaming pass (module docstring: what counts).

    Args:
        deb: the ``.deb`` file.
        copyright_text: the package's copyright text; default: its
            ``usr/share/doc/<package>/copyright`` (needed when that folder links to another package's).
        min_seconds: shortest track, in seconds.
        max_member_bytes: largest audio file read into memory, in bytes; larger ones are skipped.
        max_archive_bytes: largest zip member opened, in bytes (spooled to a temporary file past
            ``max_member_bytes``); larger ones are skipped.
        skipped: if given, receives ``(member, why)`` for every audio file (and unreadable zip)
            that gave no entry.

    Returns:
        The package's tracks, sorted by member path.

    Raises:
        ReservedPackageError: the package (by file name, then by its control file) is reserved;
            nothing of its data is read.
        DebError: the file is not a readable package, or it has music but no copyright file and
            ``copyright_text`` is not given.
        UnsafeArchiveError: a ``data.tar`` member has an absolute path or a ``..`` component.
        ValueError: a negative ``min_seconds`` or a limit under 1 byte.
    """
    deb = Path(deb)
    if min_seconds < 0 or max_member_bytes < 1 or max_archive_bytes < 1:
        raise ValueError(
            f"min_seconds must be >= 0 and the byte limits >= 1, got {min_seconds}, {max_member_bytes}, {max_archive_bytes}"
        )
    # Debian names its files NAME_VERSION_ARCH.deb: a reserved name is refused before the file is opened.
    check_usable(deb.name.split("_", 1)[0], where=str(deb))
    info = deb_info(deb)
    check_usable(info.package, where=f"{deb} (its control file)")
    doc = f"usr/share/doc/{info.package}"
    scan = _Scan(info.package, min_seconds, max_member_bytes, [], [])
    own_copyright: bytes | None = None
    doc_link = ""
    with _open_deb(deb) as (archive, members):
        data_name = _find_member(deb, members, "data")
        label = Path(f"{deb} ({data_name})")
        with _member_tar(deb, archive, members[data_name], data_name) as tar:
            for member in tar:
                _check_member_name(member.name, label)
                path = _bare_member(member.name)
                if path in (doc, f"{doc}/copyright") and (member.issym() or member.islnk()):
                    doc_link = f"{path} links to {member.linkname}"
                # Links and folders hold no bytes of their own: a linked track is indexed at its target.
                if not member.isfile():
                    continue
                if path == f"{doc}/copyright":
                    own_copyright = tar.extractfile(member).read(_COPYRIGHT_MAX_BYTES)
                    continue
                if is_reserved(info.package, path):
                    scan.skipped.append((path, "reserved (not read)"))
                    continue
                fh = tar.extractfile(member)
                head = fh.read(_HEAD_BYTES)
                if _sniff(head) is not None:
                    scan.check_audio(path, head, fh, member.size)
                elif head.startswith(b"PK\x03\x04") or path.lower().endswith(ZIP_SUFFIXES):
                    if member.size > max_archive_bytes:
                        scan.skipped.append((path, f"{member.size} bytes, over max_archive_bytes={max_archive_bytes}"))
                        continue
                    # zipfile needs to seek; the tar stream cannot.
                    with tempfile.SpooledTemporaryFile(max_size=max_member_bytes) as spool:
                        spool.write(head)
                        shutil.copyfileobj(fh, spool, CHUNK_BYTES)
                        spool.seek(0)
                        scan.check_zip(path, spool)
    kept = _deduplicated(scan.found, scan.skipped)
    if skipped is not None:
        skipped.extend(scan.skipped)
    if not kept:
        return []
    if copyright_text is None:
        if own_copyright is None:
            raise DebError(
                f"{deb} has {len(kept)} track(s) but no regular file {doc}/copyright"
                f"{f' ({doc_link})' if doc_link else ''}: pass copyright_text= the copyright file of the "
                f"package that holds it"
            )
        copyright_text = own_copyright.decode("utf-8", "replace")
    return [
        PoolEntry(info.package, info.version, f.member, f.sha256, round(f.seconds, 3),
                  member_licence(f.member, copyright_text), f.title, f.format)
        for f in kept
    ]


def deduplicate(entries: Iterable[PoolEntry]) -> tuple[list[PoolEntry], list[tuple[PoolEntry, PoolEntry]]]:
    """Drop files shipped twice (same sha256), across packages too (e.g. blockattack's
    ``bgmusic.ogg`` is trackballs-data's).

    Returns:
        The entries kept, in the order given (the first copy of each file: pass packages in the
        order that should keep shared files), and ``(kept, dropped)`` for every copy dropped.
    """
    kept: list[PoolEntry] = []
    dropped: list[tuple[PoolEntry, PoolEntry]] = []
    first: dict[str, PoolEntry] = {}
    for e in entries:
        if e.sha256 in first:
            dropped.append((first[e.sha256], e))
        else:
            first[e.sha256] = e
            kept.append(e)
    return kept, dropped


# ----------------------------------------------------------------------------- building the pool


def _epochless(version: str) -> str:
    """``version`` without its epoch (``2:1.1-3`` -> ``1.1-3``), as Debian's pool names files."""
    return version.split(":", 1)[1] if ":" in version else version


def find_pool_deb(downloads: str | os.PathLike[str], package: str, version: str) -> Path | None:
    """The ``.deb`` of exactly ``package`` at ``version`` in ``downloads``, or None.

    ``apt-get download`` names the file ``<package>_<version>_<arch>.deb`` with the epoch's ``:``
    as ``%3a`` (``widelands-data_2%3a1.1-3_all.deb``); the archive's pool drops the epoch
    (``widelands-data_1.1-3_all.deb``): both are found. Unlike :mod:`s3t.datasets.soundtracks`'s
    lookup, another version is never taken: the pool's index names the version it read.
    """
    downloads = Path(downloads)
    for spelled in dict.fromkeys((version.replace(":", "%3a"), _epochless(version))):
        found = sorted(downloads.glob(f"{glob.escape(package)}_{glob.escape(spelled)}_*.deb"))
        if found:
            return found[0]
    return None


def extract_members(
    deb: str | os.PathLike[str], members: Iterable[str], dest: str | os.PathLike[str]
) -> dict[str, Path]:
    """Extract the named files of a package into ``dest``, as the pool index names them: a plain
    package path (:func:`s3t.datasets.debian.extract_deb_members`), or ``<archive>!<path in the zip>``
    for a file inside a zip member, written to ``dest/<archive>!<path in the zip>`` (a folder named
    after the archive and the ``!``; the archive itself is extracted to a temporary folder and removed).

    Returns:
        member -> written file, for every member requested.

    Raises:
        ReservedPackageError: a requested member is reserved (by the package's file name); nothing is read.
        DebError / UnsafeArchiveError: as :func:`~s3t.datasets.debian.extract_deb_members`; also a
            requested file missing from its zip, an unsafe path inside one, or an unreadable zip.
    """
    import zipfile
    import zlib

    from s3t.datasets.debian import extract_deb_members

    deb, dest = Path(deb), Path(dest)
    package = deb.name.split("_", 1)[0]
    wanted = list(dict.fromkeys(members))
    for member in wanted:
        check_usable(package, member, where=str(deb))
    inner: dict[str, list[str]] = {}
    plain = []
    for member in wanted:
        archive, sep, path = member.partition("!")
        if sep:
            if path.startswith(("/", "\\")) or ".." in re.split(r"[\\/]", path) or not path:
                raise DebError(f"{deb}: unsafe path inside the zip {archive}: {path!r}")
            inner.setdefault(archive, []).append(path)
        else:
            plain.append(member)
    written = extract_deb_members(deb, plain, dest) if plain else {}
    if inner:
        with tempfile.TemporaryDirectory(dir=dest if dest.is_dir() else None) as scratch:
            archives = extract_deb_members(deb, list(inner), scratch)
            for archive, paths in inner.items():
                try:
                    with zipfile.ZipFile(archives[posixpath.normpath(archive)]) as opened:
                        names = set(opened.namelist())
                        for path in paths:
                            if path not in names:
                                raise DebError(f"{deb}: {path} is not in its zip member {archive}")
                            target = dest / f"{archive}!{path}"
                            target.parent.mkdir(parents=True, exist_ok=True)
                            tmp = target.with_name(f".{target.name}.tmp")
                            with opened.open(path) as src, tmp.open("wb") as out:
                                shutil.copyfileobj(src, out, CHUNK_BYTES)
                            os.chmod(tmp, 0o644)
                            os.replace(tmp, target)
                            written[f"{archive}!{path}"] = target
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
                    raise DebError(f"{deb}: its zip member {archive} is unreadable: {err}") from err
    return {member: written[member if "!" in member else posixpath.normpath(member)] for member in wanted}


def build_pool_index(
    packages: Sequence[tuple[str, str]],
    downloads: str | os.PathLike[str],
    *,
    apt_get: str | None = "apt-get",
    timeout: float = 600,
    log: list[str] | None = None,
) -> tuple[list[PoolEntry], list[tuple[PoolEntry, PoolEntry]]]:
    """Index the tracks of ``packages`` (e.g. :data:`POOL_PACKAGES`), fetching missing ``.deb`` files.

    Every name is checked against the reserved list first (a reserved one refuses the whole call
    before anything is looked up or fetched). Then, package by package in the order given: its
    ``.deb`` is looked up in ``downloads`` (:func:`find_pool_deb`), fetched there with
    ``apt-get download -o Acquire::Retries=0 NAME=VERSION`` when missing, checked to be that
    package at that version (its control file), and indexed by :func:`index_deb` with the
    copyright file inside the ``.deb``. Last, :func:`deduplicate` drops files shipped by two
    packages, keeping the copy of the earlier package.

    A package that cannot be fetched (no such version, network down, no ``apt_get``) or read
    (corrupt ``.deb``, another package or version under its name, music but no copyright file) is
    skipped, and ``log`` gets one line ``skipped NAME=VERSION: why``; other lines say what was
    downloaded and indexed (``indexed NAME=VERSION: N track(s), M min (S s)``) and which copies
    were dropped (``duplicate ...``).

    Args:
        packages: (name, version) pairs, as apt names them (``2:1.1-3`` with its epoch).
        downloads: the folder of ``.deb`` files (created if missing).
        apt_get: the apt-get command, or None to fetch nothing.
        timeout: apt-get's network timeout in seconds (one call may run three times as long).
        log: if given, receives the lines above as they happen.

    Returns:
        The tracks kept, in the order of ``packages`` then of member paths, and ``(kept, dropped)``
        for every copy of a file dropped as shipped by an earlier package.

    Raises:
        ReservedPackageError: a package is reserved, or a ``.deb`` holds a reserved package under
            an innocent name.
        ValueError: ``packages`` names one package twice.
        DownloadError: no package could be fetched and read (the message gives every reason).
    """
    from s3t.datasets.soundtracks import _apt_download  # lazily: soundtracks imports this module

    log = [] if log is None else log
    downloads = Path(downloads)
    seen: dict[str, str] = {}
    for name, version in packages:
        check_usable(name, where="build_pool_index packages")
        if _bare_name(name) in seen:
            raise ValueError(f"build_pool_index packages name {name} twice ({seen[_bare_name(name)]} and {version})")
        seen[_bare_name(name)] = version
    have_apt = bool(apt_get and shutil.which(apt_get))
    entries: list[PoolEntry] = []
    skipped: list[str] = []

    def skip(name: str, version: str, why: str) -> None:
        line = f"skipped {name}={version}: {why}"
        skipped.append(line)
        log.append(line)

    for name, version in packages:
        deb = find_pool_deb(downloads, name, version)
        if deb is None:
            if not have_apt:
                skip(name, version, f"not in {downloads} and no {apt_get or 'apt-get'} on this machine to fetch it")
                continue
            downloads.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            reason = _apt_download(apt_get, name, version, downloads, timeout)  # checks check_usable again
            deb = find_pool_deb(downloads, name, version)
            if deb is None:
                skip(name, version, reason or f"apt-get download wrote no {name}_{_epochless(version)}_*.deb")
                continue
            took = time.perf_counter() - started
            log.append(f"downloaded {deb.name} ({deb.stat().st_size / 1e6:.1f} MB, {took:.1f} s)")
        started = time.perf_counter()
        try:
            info = deb_info(deb)
            check_usable(info.package, where=f"{deb} (its control file)")
            if (info.package, info.version) != (name, version):
                skip(name, version, f"{deb} holds {info.package}={info.version}; remove it, it is fetched again")
                continue
            found = index_deb(deb)
        except ReservedPackageError:
            raise
        except (DownloadError, ArchiveError, OSError) as err:
            skip(name, version, f"{deb.name} could not be indexed: {err}")
            continue
        minutes = sum(e.duration_s for e in found) / 60
        log.append(f"indexed {name}={version}: {len(found)} track(s), {minutes:.1f} min "
                   f"({time.perf_counter() - started:.1f} s)")
        entries.extend(found)
    if len(skipped) == len(packages):
        raise DownloadError(f"no package of the pool could be fetched and indexed into {downloads}:\n  "
                            + "\n  ".join(skipped))
    kept, dropped = deduplicate(entries)
    for first, copy in dropped:
        log.append(f"duplicate {copy.track} dropped: the same file as {first.track}")
    return kept, dropped


def pool_credits(entries: Iterable[PoolEntry]) -> str:
    """Attribution for the pool's tracks as Markdown: one section per package (in the order
    given, with its version), and under it the tracks grouped by licence, as CC-BY-SA and the GPL ask.

    Like :func:`s3t.datasets.soundtracks.write_credits` it is generated from the index, never
    written by hand. Refuses reserved entries (ReservedPackageError).
    """
    by_package: dict[tuple[str, str], dict[str, list[PoolEntry]]] = {}
    for e in entries:
        check_usable(e.package, e.member, where=f"the entry {e.track}")
        by_package.setdefault((e.package, e.version), {}).setdefault(e.licence, []).append(e)
    tracks = sum(len(group) for licences in by_package.values() for group in licences.values())
    lines = [
        "## Debian pool", "",
        f"Pre-training music from {len(by_package)} Debian bookworm packages ({tracks} tracks), used unmodified",
        "except for decoding, resampling and cutting into clips. Each package's full licence text is in its",
        "`usr/share/doc/<package>/copyright` file; the licence below is the short name that file gives each track.", "",
    ]
    for (package, version), licences in by_package.items():
        lines += [f"### {package} {version}", ""]
        for licence, group in licences.items():
            titles = "; ".join(f"\"{e.title}\"" for e in group)
            lines.append(f"- {licence} ({len(group)} track{'s' if len(group) > 1 else ''}): {titles}")
        lines.append("")
    return "\n".join(lines)


def _write_text_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in its folder, so a file under
    the final name is always complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def write_pool_credits(entries: Iterable[PoolEntry], path: str | os.PathLike[str]) -> None:
    """Write :func:`pool_credits` to ``path``, atomically (refusing reserved entries before writing)."""
    _write_text_atomic(pool_credits(entries), path)


def pool_totals(entries: Iterable[PoolEntry]) -> dict[str, tuple[int, float]]:
    """package -> (tracks, seconds of music) over ``entries``, in the order packages first appear."""
    totals: dict[str, tuple[int, float]] = {}
    for e in entries:
        tracks, seconds = totals.get(e.package, (0, 0.0))
        totals[e.package] = (tracks + 1, seconds + e.duration_s)
    return totals


# ----------------------------------------------------------------------------- the pool CSV


class PoolIndexError(ValueError):
    """A pool CSV that cannot be read: wrong columns, or a row with a missing or invalid field."""


def write_pool_index(entries: Iterable[PoolEntry], path: str | os.PathLike[str]) -> None:
    """Write the pool CSV (columns :data:`POOL_COLUMNS`, durations in seconds to the millisecond),
    atomically.

    Raises:
        ReservedPackageError: an entry names a reserved package or file; nothing is written.
    """
    rows = []
    for e in entries:
        check_usable(e.package, e.member, where=f"the entry {e.track}")
        rows.append([e.package, e.version, e.member, e.sha256, f"{e.duration_s:.3f}", e.licence, e.title, e.format])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(POOL_COLUMNS)
    writer.writerows(rows)
    _write_text_atomic(text.getvalue(), path)


def _row_entry(row: dict[str, str | None], where: str) -> PoolEntry:
    """The entry of one CSV row; PoolIndexError naming the row and field when one is missing or invalid."""
    missing = [c for c in POOL_COLUMNS if not (row.get(c) or "").strip()]
    if missing or None in row:
        what = f"no {', '.join(missing)}" if missing else "more fields than the header"
        raise PoolIndexError(f"{where}: {what}; every row needs {','.join(POOL_COLUMNS)} (write it with write_pool_index)")
    values = {c: str(row[c]) for c in POOL_COLUMNS}
    check_usable(values["package"], values["member"], where=where)

    def bad(field: str, rule: str) -> PoolIndexError:
        return PoolIndexError(f"{where}: {field} {values[field]!r} is not {rule}; fix or remove the row")

    if not _PACKAGE_NAME.fullmatch(values["package"]):
        raise bad("package", "a Debian package name (lower-case letters, digits, '+', '-', '.')")
    if not _VERSION.fullmatch(values["version"]):
        raise bad("version", "a Debian version (starting with a digit, e.g. 1.0-1 or 2:1.1-3)")
    member = values["member"]
    if member.startswith(("/", "\\")) or "\\" in member or ".." in re.split(r"[/!]", member):
        raise bad("member", "a path inside the package (relative, no '..' or backslash)")
    if not _SHA256.fullmatch(values["sha256"]):
        raise bad("sha256", "64 lower-case hexadecimal digits")
    try:
        duration = float(values["duration_s"])
    except ValueError:
        raise bad("duration_s", "a number of seconds") from None
    if not (math.isfinite(duration) and duration > 0):
        raise bad("duration_s", "a positive finite number of seconds")
    if values["format"] not in FORMATS:
        raise bad("format", f"one of {', '.join(FORMATS)}")
    return PoolEntry(**{**values, "duration_s": duration})


def read_pool_index(path: str | os.PathLike[str]) -> list[PoolEntry]:
    """The entries of a pool CSV written by :func:`write_pool_index`.

    Raises:
        ReservedPackageError: a row names a reserved package or file (refused, not dropped: such
            an index was made against the rules).
        PoolIndexError: the header is not :data:`POOL_COLUMNS`, or a row has a missing or invalid
            field or repeats a track; the message names the line.
        OSError: the file cannot be read.
    """
    path = Path(path)
    entries: list[PoolEntry] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != POOL_COLUMNS:
            raise PoolIndexError(f"{path}: the header must be {','.join(POOL_COLUMNS)}, got {reader.fieldnames}")
        for row in reader:
            where = f"{path} line {reader.line_num}"
            entry = _row_entry(row, where)
            if entry.track in seen:
                raise PoolIndexError(f"{where}: {entry.track} is already on line {seen[entry.track]}; remove one row")
            seen[entry.track] = reader.line_num
            entries.append(entry)
    return entries
