"""A generated multi-genre music corpus: the default data set, which needs no download.

The paper (Sec. 3.1) pre-trains on one million in-house recordings and evaluates on GTZAN,
FMA and MagnaTagATune; none of these can be fetched everywhere. This module writes a
GTZAN-shaped stand-in (the ten GTZAN genre names, 30 s mono clips at 22.05 kHz) that is
both the unlabeled pre-training audio and a labeled genre task, so that a newcomer gets a
real result without any download.

Each clip is composed as MIDI (drums, bass, chords, an optional pad and a melody) and
rendered with a General MIDI SoundFont. Genres differ in learnable musical structure --
drum patterns, swing, meter, harmony and progressions, scales and modes, bass and comping
styles, note density, articulation, register, instrument families -- while the global
cues that would give a genre away on their own are blurred on purpose: tempo ranges
overlap, the key is uniform, instrument pools overlap between genres, and mix levels,
reverb, EQ tilt, band limits, saturation, noise floor and output peak are drawn from
one distribution shared by every genre (an earlier check, ``bench/corpus_separability.py`` at
18674ae, found a classifier on a few global cues well below one on spectral statistics).

Rendering choice: MIDI is built with ``pretty_midi`` and rendered by ``midirenderer``
(a Rust wrapper of rustysynth, MIT) with the ``TimGM6mb.sf2`` SoundFont that ships inside
the ``pretty_midi`` wheel. Both are pure wheels that need no system library (FluidSynth
bindings need Debian's libfluidsynth; tinysoundfont needs pyaudio), the synthesis is
deterministic (same MIDI bytes -> same samples) and fast: composing, synthesizing and
post-processing a 30 s clip takes about 0.85 s on one core (~35x real time).

Reproducibility: :func:`draw_clip_spec` draws every high-level choice from
``numpy.random.default_rng(seed)`` into a frozen :class:`ClipSpec`; :func:`compose` draws
note-level detail (melody pitches, timing jitter) from a generator seeded by the spec's
seed, so a spec determines its clip and the same seed gives bit-identical audio.
Per-clip seeds come from ``(corpus seed, genre, index)`` through :func:`clip_seed`.

Choices not fixed by the paper: the corpus is ours, not the paper's (the paper's data are
private); 16-bit PCM WAV files, the ``path,label,split`` manifest of :mod:`s3t.manifest`,
and train/valid/test fractions 0.7/0.15/0.15 stratified per genre (GTZAN has no official
split; the paper uses the fault-filtered split of its ref. [13]).
"""

from __future__ import annotations

import bisect
import io
import json
import math
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

# Bump when a change to the generator changes the audio of a given seed, so that an old
# corpus folder is not silently completed with clips of a different generator.
CORPUS_VERSION = 1

PARTS = ("drums", "bass", "comp", "pad", "melody")

# ---------------------------------------------------------------------------------------
# Music theory tables
# ---------------------------------------------------------------------------------------

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
_PENTATONIC = {True: (0, 2, 4, 7, 9), False: (0, 3, 5, 7, 10)}  # keyed by "mode has a major third"
_BLUES = (0, 3, 5, 6, 7, 10)

_NUMERALS = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}
# Chord suffix -> intervals above the root, for (upper-case numeral, lower-case numeral).
_QUALITIES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "": ((0, 4, 7), (0, 3, 7)),
    "7": ((0, 4, 7, 10), (0, 3, 7, 10)),
    "maj7": ((0, 4, 7, 11), (0, 4, 7, 11)),
    "9": ((0, 4, 7, 10, 14), (0, 3, 7, 10, 14)),
    "maj9": ((0, 4, 7, 11, 14), (0, 4, 7, 11, 14)),
    "13": ((0, 4, 10, 14, 21), (0, 3, 10, 14, 21)),
    "6": ((0, 4, 7, 9), (0, 3, 7, 9)),
    "5": ((0, 7, 12), (0, 7, 12)),
    "h7": ((0, 3, 6, 10), (0, 3, 6, 10)),
    "o": ((0, 3, 6), (0, 3, 6)),
    "sus4": ((0, 5, 7), (0, 5, 7)),
}

# General MIDI percussion keys (channel 10).
KICK, RIM, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
CRASH, RIDE, RIDE_BELL, TAMBOURINE, HIGH_CONGA, LOW_CONGA, SHAKER = 49, 51, 53, 54, 63, 64, 70
TOMS = (50, 48, 47, 45, 43, 41)
_HIT_LEVEL = {"X": 1.0, "x": 0.85, "o": 0.65, ".": 0.35}

# One bar per pattern, 4 steps per beat; the string length fixes the meter.
DRUM_PATTERNS: dict[str, dict[int, str]] = {
    "rock_beat": {KICK: "x-------x-x-----", SNARE: "----X-------X---", CLOSED_HAT: "x-o-x-o-x-o-x-o-"},
    "rock_drive": {KICK: "x-x-----x-x--x--", SNARE: "----X-------X---", CLOSED_HAT: "xoxoxoxoxoxoxoxo"},
    "rock_ride": {KICK: "x-----x-x-------", SNARE: "----X-------X---", RIDE: "x-o-x-o-x-o-x-o-"},
    "halftime": {KICK: "x-----x-------x-", SNARE: "--------X-------", CLOSED_HAT: "x-x-x-x-x-x-x-x-"},
    "shuffle": {KICK: "o---o---o---o---", SNARE: "----X-------X---", CLOSED_HAT: "x-x-x-x-x-x-x-x-"},
    "pop_beat": {KICK: "x-------x-------", CLAP: "----X-------X---", CLOSED_HAT: "o.o.o.o.o.o.o.o.",
                 TAMBOURINE: "----x-------x---"},
    "pop_syncop": {KICK: "x--x--x---x-----", SNARE: "----X-------X---", SHAKER: "xoxoxoxoxoxoxoxo"},
    "four_floor": {KICK: "X---X---X---X---", SNARE: "----x-------x---", CLOSED_HAT: "x---x---x---x---",
                   OPEN_HAT: "--x---x---x---x-", TAMBOURINE: "o.o.o.o.o.o.o.o."},
    "disco_16": {KICK: "X---X---X---X---", CLAP: "----X-------X---", CLOSED_HAT: "xo-oxo-oxo-oxo-o",
                 OPEN_HAT: "--x---x---x---x-", HIGH_CONGA: "--x--x----x--x-x", LOW_CONGA: "x------x-x------"},
    "boom_bap": {KICK: "x------x-x------", SNARE: "----X-------X---", CLOSED_HAT: "x-o-x-o-x-o-x-o-"},
    "boom_bap2": {KICK: "x--x---x--x-----", SNARE: "----X--.----X---", CLOSED_HAT: "x-x-x-x-x-x-x-x-"},
    "trap": {KICK: "x------x--x-----", CLAP: "--------X-------", CLOSED_HAT: "xoxoxoxoxoxoxoxo"},
    "jazz_swing": {RIDE: "x---x-o-x---x-o-", PEDAL_HAT: "----x-------x---", KICK: ".---.---.---.---"},
    "bossa": {KICK: "x--xx--xx--xx--x", RIM: "x--x--x---x--x--", CLOSED_HAT: "xoxoxoxoxoxoxoxo"},
    "train": {KICK: "x-------x-------", SNARE: ".oxo.oxo.oxo.oxo", TAMBOURINE: "----x-------x---"},
    "two_step": {KICK: "x-------x-------", SNARE: "----X-------X---", CLOSED_HAT: "--x---x---x---x-"},
    "one_drop": {KICK: "--------X-------", RIM: "--------X-------", CLOSED_HAT: "x-x-x-x-x-x-x-x-"},
    "steppers": {KICK: "X---X---X---X---", RIM: "--------X-------", CLOSED_HAT: "--x---x---x---x-",
                 SHAKER: "xoxoxoxoxoxoxoxo"},
    "rockers": {KICK: "x-------x-------", RIM: "----x-------x---", CLOSED_HAT: "x-x-x-x-x-x-x-x-"},
    "double_kick": {KICK: "xxxxxxxxxxxxxxxx", SNARE: "----X-------X---", CRASH: "x-------x-------",
                    RIDE_BELL: "--x---x---x---x-"},
    "blast": {KICK: "x-x-x-x-x-x-x-x-", SNARE: "-x-x-x-x-x-x-x-x", CRASH: "x---x---x---x---"},
    "gallop": {KICK: "x-xxx-xxx-xxx-xx", SNARE: "----X-------X---", CLOSED_HAT: "x-x-x-x-x-x-x-x-"},
    "jazz_waltz": {RIDE: "x---x-o-x-o-", PEDAL_HAT: "----x---x---", KICK: ".-----------"},
    "waltz": {KICK: "x-----------", SNARE: "----x---x---", CLOSED_HAT: "x-x-x-x-x-x-"},
}
# Patterns generated for any meter: silence, or sparse orchestral bass drum and cymbals.
_FREE_PATTERNS = ("none", "orchestral")

BASS_STYLES = ("root8", "root_fifth", "walking", "boogie", "octave", "reggae", "sub", "syncop", "classical",
               "pedal16")
COMP_STYLES = ("strum8", "strum16", "power", "sustain", "skank", "skank8", "jazz_comp", "arpeggio", "alberti",
               "stabs", "block")


@dataclass(frozen=True)
class GenreStyle:
    """The distributions one genre draws its clips from (ranges are inclusive ``(low, high)``).

    Pools are tuples; a repeated entry is a heavier weight. Program numbers are General
    MIDI programs 0-127 (``-1`` in ``pad_programs``: no pad); drum kits are bank-128
    presets of the SoundFont (0 standard, 8 room, 16 power, 24 electronic, 25 TR-808,
    32 jazz, 40 brush, 48 orchestra).
    """

    tempo_bpm: tuple[float, float]
    meters: tuple[int, ...]  # beats per bar, quarter-note beats
    swing_prob: float
    swing: tuple[float, float]  # 0 straight .. 1/6 triplet swing (fraction of the swung pair)
    swing_unit: float  # beats: 0.5 swings eighths, 0.25 swings sixteenths
    harmonies: tuple[tuple[str, str], ...]  # (mode, progression of bars; "a/b" splits a bar)
    chord_bars: tuple[int, ...]  # bars each progression bar is stretched to
    melody_scales: tuple[str, ...]  # "mode", "pentatonic" or "blues"
    drum_patterns: tuple[str, ...]
    drum_kits: tuple[int, ...]
    bass_styles: tuple[str, ...]
    comp_styles: tuple[str, ...]
    bass_programs: tuple[int, ...]
    comp_programs: tuple[int, ...]
    melody_programs: tuple[int, ...]
    pad_programs: tuple[int, ...]
    bass_low: tuple[int, int]  # lowest MIDI pitch a bass root may take
    comp_center: tuple[int, int]  # MIDI pitch the chord voicings centre on
    melody_density: tuple[float, float]  # mean onsets per beat
    melody_quanta: tuple[int, ...]  # melody grid, steps per beat
    melody_legato: tuple[float, float]  # sounding fraction of the inter-onset interval
    melody_center: tuple[int, int]  # MIDI pitch the melody circles around
    melody_step: tuple[float, float]  # probability of moving by one scale step
    melody_motif: tuple[float, float]  # probability of repeating the previous phrase rhythm/contour
    melody_rest: tuple[float, float]  # probability of a silent phrase
    melody_chromatic: tuple[float, float]  # probability of a chromatic approach note
    melody_bend: tuple[float, float]  # probability of a pitch bend into a long note
    melody_tremolo: tuple[float, float]  # probability of tremolo-picking a long note
    velocity: tuple[int, int]
    bass_level: tuple[float, float]  # velocity multiplier of the bass part: how bass-heavy the mix is
    drive: tuple[float, float]  # tanh saturation gain: mastering loudness
    reverb_send: tuple[int, int]  # CC91
    humanize_ms: tuple[float, float]
    rubato: tuple[float, float]
    fill_prob: tuple[float, float]
    ghost_prob: tuple[float, float]


_STYLES: dict[str, GenreStyle] = {
    "blues": GenreStyle(
        tempo_bpm=(62, 140), meters=(4,), swing_prob=0.85, swing=(0.10, 0.1667), swing_unit=0.5,
        harmonies=(("mixolydian", "I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"),
                   ("mixolydian", "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"),
                   ("dorian", "i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7"),
                   ("mixolydian", "I7 V7 IV7 IV7 I7 V7 I7 V7")),
        chord_bars=(1,), melody_scales=("blues", "blues", "pentatonic", "mode"),
        drum_patterns=("shuffle", "shuffle", "rock_beat", "halftime"), drum_kits=(0, 8, 32),
        bass_styles=("boogie", "walking", "root_fifth"), comp_styles=("block", "strum8", "jazz_comp", "sustain"),
        bass_programs=(32, 33), comp_programs=(0, 0, 0, 16, 4, 26),
        melody_programs=(22, 22, 29, 29, 65, 56), pad_programs=(-1, -1, 16),
        bass_low=(28, 36), comp_center=(52, 64),
        melody_density=(1.0, 3.0), melody_quanta=(2,), melody_legato=(0.5, 0.9), melody_center=(58, 72),
        melody_step=(0.4, 0.7), melody_motif=(0.3, 0.7), melody_rest=(0.15, 0.35), melody_chromatic=(0.02, 0.12),
        melody_bend=(0.2, 0.5), melody_tremolo=(0.0, 0.0), velocity=(70, 110),
        bass_level=(0.75, 1.05), drive=(0.4, 1.6), reverb_send=(20, 70), humanize_ms=(5, 18),
        rubato=(0.0, 0.01), fill_prob=(0.3, 0.7), ghost_prob=(0.05, 0.25)),
    "classical": GenreStyle(
        tempo_bpm=(56, 140), meters=(4, 4, 3), swing_prob=0.0, swing=(0.0, 0.0), swing_unit=0.5,
        harmonies=(("major", "I IV V I"), ("major", "I vi ii V7"), ("major", "I V vi iii IV I IV V"),
                   ("harmonic_minor", "i iv V7 i"), ("harmonic_minor", "i VI iv V"), ("major", "I ii V7 I"),
                   ("major", "I/IV I/V vi/IV V"), ("harmonic_minor", "i/iv i/V7 VI/iv V")),
        chord_bars=(1, 1, 2), melody_scales=("mode",),
        drum_patterns=("none", "none", "orchestral"), drum_kits=(48,),
        bass_styles=("classical", "root_fifth", "classical"), comp_styles=("arpeggio", "alberti", "sustain", "block"),
        bass_programs=(42, 43, 70, 0), comp_programs=(0, 48, 6, 46, 49, 45),
        melody_programs=(40, 73, 68, 71, 0, 60, 41), pad_programs=(-1, -1, 48, 49, 19),
        bass_low=(36, 43), comp_center=(55, 70),
        melody_density=(1.0, 4.0), melody_quanta=(2, 4), melody_legato=(0.8, 1.0), melody_center=(64, 82),
        melody_step=(0.7, 0.95), melody_motif=(0.3, 0.7), melody_rest=(0.05, 0.25), melody_chromatic=(0.0, 0.05),
        melody_bend=(0.0, 0.0), melody_tremolo=(0.0, 0.0), velocity=(45, 100),
        bass_level=(0.7, 0.95), drive=(0.3, 0.9), reverb_send=(50, 100), humanize_ms=(8, 25),
        rubato=(0.02, 0.08), fill_prob=(0.0, 0.0), ghost_prob=(0.0, 0.0)),
    "country": GenreStyle(
        tempo_bpm=(84, 170), meters=(4, 4, 4, 4, 3), swing_prob=0.35, swing=(0.05, 0.16), swing_unit=0.5,
        harmonies=(("major", "I IV I V"), ("major", "I I IV IV V V I I"), ("major", "I V I IV"),
                   ("major", "I IV V I"), ("major", "I vi IV V"), ("mixolydian", "I bVII IV I"),
                   ("major", "I I IV I V7 V7 I I")),
        chord_bars=(1, 2), melody_scales=("pentatonic", "mode", "mode"),
        drum_patterns=("train", "two_step", "waltz", "shuffle"), drum_kits=(40, 0, 40),
        bass_styles=("root_fifth", "root_fifth", "boogie", "walking"),
        comp_styles=("strum8", "strum8", "arpeggio", "block"),
        bass_programs=(32, 33), comp_programs=(25, 25, 25, 24, 105, 105),
        melody_programs=(110, 110, 110, 105, 25, 22), pad_programs=(-1, -1, -1, 48),
        bass_low=(33, 40), comp_center=(52, 64),
        melody_density=(0.8, 2.5), melody_quanta=(2, 4), melody_legato=(0.5, 0.9), melody_center=(60, 76),
        melody_step=(0.5, 0.8), melody_motif=(0.4, 0.8), melody_rest=(0.15, 0.3), melody_chromatic=(0.0, 0.04),
        melody_bend=(0.1, 0.35), melody_tremolo=(0.0, 0.0), velocity=(65, 110),
        bass_level=(0.75, 1.05), drive=(0.4, 1.4), reverb_send=(10, 60), humanize_ms=(4, 14),
        rubato=(0.0, 0.0), fill_prob=(0.2, 0.5), ghost_prob=(0.0, 0.1)),
    "disco": GenreStyle(
        tempo_bpm=(108, 134), meters=(4,), swing_prob=0.1, swing=(0.02, 0.08), swing_unit=0.25,
        harmonies=(("dorian", "i7 iv7"), ("dorian", "i7 i7 iv7 iv7"), ("major", "vi7 ii7 V7 Imaj7"),
                   ("minor", "i bVII bVI bVII"), ("major", "Imaj7 IVmaj7"), ("major", "ii7 V7 Imaj7 vi7"),
                   ("minor", "i iv bVII bIII")),
        chord_bars=(1, 2), melody_scales=("mode", "pentatonic"),
        drum_patterns=("four_floor", "disco_16"), drum_kits=(0, 24, 8),
        bass_styles=("octave", "octave", "syncop"), comp_styles=("stabs", "strum16", "sustain"),
        bass_programs=(36, 36, 33, 38), comp_programs=(28, 28, 27, 27, 4, 7),
        melody_programs=(48, 48, 48, 61, 61, 50, 81), pad_programs=(48, 50, -1),
        bass_low=(28, 36), comp_center=(60, 72),
        melody_density=(0.8, 2.0), melody_quanta=(2, 4), melody_legato=(0.4, 0.9), melody_center=(64, 80),
        melody_step=(0.5, 0.8), melody_motif=(0.5, 0.9), melody_rest=(0.2, 0.5), melody_chromatic=(0.0, 0.05),
        melody_bend=(0.0, 0.0), melody_tremolo=(0.0, 0.0), velocity=(75, 115),
        bass_level=(0.75, 1.05), drive=(0.8, 2.0), reverb_send=(20, 70), humanize_ms=(2, 8),
        rubato=(0.0, 0.0), fill_prob=(0.2, 0.5), ghost_prob=(0.0, 0.1)),
    "hiphop": GenreStyle(
        tempo_bpm=(72, 108), meters=(4,), swing_prob=0.6, swing=(0.04, 0.14), swing_unit=0.25,
        harmonies=(("minor", "i bVI"), ("minor", "i iv"), ("dorian", "i7 iv7"), ("major", "Imaj7 vi7"),
                   ("major", "ii7 V7"), ("minor", "i i bVI bVII"), ("minor", "i7 bIIImaj7 bVImaj7 V7"),
                   ("harmonic_minor", "i bVI V i")),
        chord_bars=(1, 2, 2), melody_scales=("pentatonic", "mode"),
        drum_patterns=("boom_bap", "boom_bap2", "trap", "halftime"), drum_kits=(25, 25, 25, 24),
        bass_styles=("sub", "sub", "syncop", "root8"), comp_styles=("sustain", "stabs", "arpeggio", "block"),
        bass_programs=(38, 38, 39, 87), comp_programs=(4, 4, 4, 0, 88, 5),
        melody_programs=(80, 80, 10, 9, 11, 48), pad_programs=(89, 91, 50, -1),
        bass_low=(24, 31), comp_center=(58, 70),
        melody_density=(0.4, 1.6), melody_quanta=(4,), melody_legato=(0.5, 1.0), melody_center=(60, 80),
        melody_step=(0.4, 0.8), melody_motif=(0.7, 1.0), melody_rest=(0.3, 0.6), melody_chromatic=(0.0, 0.0),
        melody_bend=(0.0, 0.0), melody_tremolo=(0.0, 0.0), velocity=(70, 115),
        bass_level=(0.95, 1.15), drive=(1.0, 2.5), reverb_send=(0, 40), humanize_ms=(2, 10),
        rubato=(0.0, 0.0), fill_prob=(0.0, 0.2), ghost_prob=(0.1, 0.35)),
    "jazz": GenreStyle(
        tempo_bpm=(88, 200), meters=(4, 4, 4, 3), swing_prob=0.9, swing=(0.10, 0.1667), swing_unit=0.5,
        harmonies=(("major", "ii7/V7 Imaj7 ii7/V7 Imaj7"), ("major", "Imaj7 vi7 ii7 V7"),
                   ("minor", "iih7/V7 i7 iih7/V7 i7"), ("major", "Imaj7 IV7 iii7/VI7 ii7/V7"),
                   ("dorian", "i7 i7 bIIImaj7 IV7"), ("major", "iii7/VI7 ii7/V7 Imaj7 Imaj7"),
                   ("major", "Imaj9 IVmaj7 ii9 V13")),
        chord_bars=(1, 1, 2), melody_scales=("mode", "mode", "blues"),
        drum_patterns=("jazz_swing", "jazz_swing", "jazz_waltz", "bossa"), drum_kits=(32, 40, 32),
        bass_styles=("walking", "walking", "root_fifth"), comp_styles=("jazz_comp", "jazz_comp", "block"),
        bass_programs=(32, 32, 32, 35), comp_programs=(0, 0, 0, 26, 26, 11),
        melody_programs=(65, 65, 66, 56, 57, 26), pad_programs=(-1, -1, -1, 48),
        bass_low=(28, 36), comp_center=(56, 66),
        melody_density=(1.6, 3.5), melody_quanta=(2,), melody_legato=(0.55, 0.9), melody_center=(60, 76),
        melody_step=(0.5, 0.8), melody_motif=(0.1, 0.4), melody_rest=(0.1, 0.3), melody_chromatic=(0.1, 0.3),
        melody_bend=(0.0, 0.0), melody_tremolo=(0.0, 0.0), velocity=(55, 100),
        bass_level=(0.75, 1.05), drive=(0.3, 1.2), reverb_send=(20, 70), humanize_ms=(6, 18),
        rubato=(0.0, 0.0), fill_prob=(0.1, 0.3), ghost_prob=(0.15, 0.4)),
    "metal": GenreStyle(
        tempo_bpm=(96, 190), meters=(4,), swing_prob=0.0, swing=(0.0, 0.0), swing_unit=0.5,
        harmonies=(("phrygian", "i5 bII5 i5 bVII5"), ("minor", "i5 bVI5 bVII5 i5"), ("minor", "i5 bIII5 bVII5 bVI5"),
                   ("harmonic_minor", "i5 bVI5 V5 i5"), ("minor", "i5 i5 bVI5 bVII5"),
                   ("phrygian", "i5 bII5 bIII5 bII5"), ("minor", "i bVI bIII bVII")),
        chord_bars=(1, 2), melody_scales=("mode", "mode", "pentatonic", "blues"),
        drum_patterns=("double_kick", "gallop", "blast", "halftime", "rock_drive"), drum_kits=(16, 16, 0),
        bass_styles=("pedal16", "root8", "root8"), comp_styles=("power", "power", "sustain"),
        bass_programs=(34, 34, 33), comp_programs=(30, 30, 30, 29),
        melody_programs=(30, 30, 29, 81), pad_programs=(-1, -1, 48, 91, 19),
        bass_low=(26, 31), comp_center=(40, 52),
        melody_density=(2.0, 4.0), melody_quanta=(4,), melody_legato=(0.5, 0.9), melody_center=(55, 76),
        melody_step=(0.5, 0.8), melody_motif=(0.3, 0.7), melody_rest=(0.2, 0.5), melody_chromatic=(0.0, 0.08),
        melody_bend=(0.0, 0.2), melody_tremolo=(0.1, 0.4), velocity=(85, 120),
        bass_level=(0.75, 1.05), drive=(1.2, 2.5), reverb_send=(0, 50), humanize_ms=(2, 8),
        rubato=(0.0, 0.0), fill_prob=(0.3, 0.6), ghost_prob=(0.0, 0.0)),
    "pop": GenreStyle(
        tempo_bpm=(82, 132), meters=(4,), swing_prob=0.1, swing=(0.02, 0.1), swing_unit=0.25,
        harmonies=(("major", "I V vi IV"), ("major", "vi IV I V"), ("major", "I vi IV V"), ("major", "I IV vi V"),
                   ("minor", "i bVI bIII bVII"), ("major", "IV V iii vi"), ("major", "I V/vi IV/V I")),
        chord_bars=(1, 1, 2), melody_scales=("mode", "pentatonic"),
        drum_patterns=("pop_beat", "pop_syncop", "halftime", "rock_beat"), drum_kits=(0, 24, 8),
        bass_styles=("root8", "root_fifth", "syncop", "octave"),
        comp_styles=("strum8", "arpeggio", "sustain", "stabs", "block"),
        bass_programs=(38, 38, 33, 39), comp_programs=(0, 0, 4, 90, 90, 5),
        melody_programs=(53, 54, 81, 73, 0, 80), pad_programs=(89, 89, 88, 48, 50, -1),
        bass_low=(28, 36), comp_center=(55, 68),
        melody_density=(0.7, 1.8), melody_quanta=(2, 4), melody_legato=(0.7, 1.0), melody_center=(62, 79),
        melody_step=(0.6, 0.9), melody_motif=(0.5, 0.9), melody_rest=(0.2, 0.4), melody_chromatic=(0.0, 0.03),
        melody_bend=(0.0, 0.0), melody_tremolo=(0.0, 0.0), velocity=(70, 110),
        bass_level=(0.75, 1.05), drive=(0.8, 2.2), reverb_send=(30, 80), humanize_ms=(2, 10),
        rubato=(0.0, 0.0), fill_prob=(0.2, 0.5), ghost_prob=(0.0, 0.15)),
    "reggae": GenreStyle(
        tempo_bpm=(66, 104), meters=(4,), swing_prob=0.5, swing=(0.04, 0.12), swing_unit=0.5,
        harmonies=(("major", "I IV"), ("major", "I V"), ("minor", "i iv"), ("major", "I IV V IV"), ("major", "ii7 V7"),
                   ("minor", "i bVII"), ("major", "I vi IV V"), ("major", "I V vi IV")),
        chord_bars=(1, 2), melody_scales=("mode", "pentatonic"),
        drum_patterns=("one_drop", "one_drop", "steppers", "rockers"), drum_kits=(0, 8, 24),
        bass_styles=("reggae", "reggae", "root_fifth"), comp_styles=("skank", "skank", "skank8", "stabs"),
        bass_programs=(33, 33, 32, 38), comp_programs=(27, 27, 28, 16, 16, 17),
        melody_programs=(56, 56, 65, 66, 61, 16), pad_programs=(-1, 16, 4, -1),
        bass_low=(28, 35), comp_center=(62, 72),
        melody_density=(0.4, 1.4), melody_quanta=(2, 4), melody_legato=(0.4, 0.8), melody_center=(60, 76),
        melody_step=(0.5, 0.8), melody_motif=(0.5, 0.9), melody_rest=(0.3, 0.6), melody_chromatic=(0.0, 0.0),
        melody_bend=(0.0, 0.1), melody_tremolo=(0.0, 0.0), velocity=(65, 105),
        bass_level=(0.95, 1.15), drive=(0.5, 1.6), reverb_send=(40, 100), humanize_ms=(4, 12),
        rubato=(0.0, 0.0), fill_prob=(0.1, 0.3), ghost_prob=(0.05, 0.2)),
    "rock": GenreStyle(
        tempo_bpm=(92, 168), meters=(4,), swing_prob=0.15, swing=(0.05, 0.15), swing_unit=0.5,
        harmonies=(("major", "I V vi IV"), ("major", "I IV V IV"), ("mixolydian", "I bVII IV I"),
                   ("minor", "i bVI bVII i"), ("minor", "i bVII bVI bVII"), ("major", "I bIII IV I"),
                   ("major", "I IV I V"), ("mixolydian", "I5 bVII5 IV5 IV5")),
        chord_bars=(1, 2), melody_scales=("pentatonic", "blues", "mode"),
        drum_patterns=("rock_beat", "rock_drive", "rock_ride", "halftime"), drum_kits=(0, 8, 16),
        bass_styles=("root8", "root8", "root_fifth", "boogie"), comp_styles=("power", "strum8", "power", "block"),
        bass_programs=(33, 34, 34), comp_programs=(29, 29, 29, 30, 27, 18),
        melody_programs=(29, 29, 30, 18, 81), pad_programs=(-1, -1, 18, 48, 16),
        bass_low=(28, 36), comp_center=(48, 60),
        melody_density=(0.8, 2.2), melody_quanta=(2, 4), melody_legato=(0.6, 0.95), melody_center=(60, 76),
        melody_step=(0.5, 0.8), melody_motif=(0.3, 0.7), melody_rest=(0.2, 0.5), melody_chromatic=(0.0, 0.05),
        melody_bend=(0.1, 0.3), melody_tremolo=(0.0, 0.1), velocity=(75, 115),
        bass_level=(0.75, 1.05), drive=(0.8, 2.2), reverb_send=(10, 60), humanize_ms=(3, 12),
        rubato=(0.0, 0.0), fill_prob=(0.3, 0.6), ghost_prob=(0.0, 0.15)),
}

# Mix and post-effect distributions shared by every genre, so that none of them is a genre cue
# (saturation and reverb send, which are genre habits, have overlapping per-genre ranges).
_VOLUME_CC = (85, 120)
_PAN_CC = (34, 94)
_CHORUS_CC = (0, 50)
_EQ_TILT_DB_PER_OCTAVE = (-1.5, 1.5)
_HIGHPASS_HZ = (20.0, 150.0)
_LOWPASS_HZ = (5000.0, 12000.0)  # log-uniform; at or above Nyquist means no low-pass
_LOWPASS_PROB = 0.3
_ROOM_SECONDS = (0.2, 2.5)
_ROOM_WET = (0.0, 0.3)
_NOISE_DB = (-75.0, -45.0)
_PEAK = (0.5, 0.99)


def genre_style(genre: str) -> GenreStyle:
    """The drawing distributions of one genre (raises ValueError for an unknown genre)."""
    _check_genre(genre)
    return _STYLES[genre]


def _check_genre(genre: str) -> None:
    if genre not in _STYLES:
        raise ValueError(f"unknown genre {genre!r}; choose one of {', '.join(GENRES)}")


# ---------------------------------------------------------------------------------------
# Clip specification
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    """Every drawn choice that determines one clip; see :func:`draw_clip_spec`.

    Times are in beats (quarter notes) unless a name says otherwise; MIDI levels are 0-127;
    part tuples follow :data:`PARTS` (drums, bass, comp, pad, melody).
    """

    genre: str
    seed: int
    tempo: float  # beats per minute
    beats_per_bar: int
    swing: float  # 0 straight .. 1/6 triplet swing, fraction of the swung pair
    swing_unit: float  # beats: 0.5 swings eighths, 0.25 sixteenths
    key: int  # tonic pitch class, 0 = C
    mode: str  # harmonic mode, a key of MODES
    progression: tuple[str, ...]  # one entry per bar; "a/b" splits a bar
    chord_bars: int  # each progression bar lasts this many bars
    melody_scale: str  # "mode", "pentatonic" or "blues"
    drum_pattern: str
    drum_kit: int
    bass_style: str
    bass_program: int
    bass_low: int  # lowest MIDI pitch a bass root may take
    comp_style: str
    comp_program: int
    comp_center: int  # MIDI pitch the chord voicings centre on
    pad_program: int  # -1: no pad
    melody_program: int
    melody_density: float
    melody_quantum: int
    melody_legato: float
    melody_center: int
    melody_range: int  # semitones either side of melody_center
    melody_step: float
    melody_motif: float
    melody_rest: float
    melody_chromatic: float
    melody_bend: float
    melody_tremolo: float
    section_bars: int
    arrangement: tuple[tuple[bool, ...], ...]  # per section (cycled), which PARTS play
    section_dynamics: tuple[float, ...]  # per section (cycled), velocity multiplier
    velocity: int
    part_levels: tuple[float, ...]  # per part velocity multiplier
    part_volumes: tuple[int, ...]  # per part CC7
    part_pans: tuple[int, ...]  # per part CC10
    reverb_send: int  # CC91
    chorus_send: int  # CC93
    humanize_ms: float
    rubato: float
    fill_prob: float
    ghost_prob: float
    eq_tilt_db_per_octave: float
    highpass_hz: float
    lowpass_hz: float  # >= Nyquist: no low-pass
    room_seconds: float  # RT60 of the synthetic room
    room_wet: float
    drive: float  # tanh saturation gain
    noise_db: float  # noise floor relative to the signal RMS
    peak: float  # output peak amplitude


def _pick(rng: np.random.Generator, pool: Sequence):
    return pool[int(rng.integers(len(pool)))]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int = 4) -> float:
    return round(float(rng.uniform(bounds[0], bounds[1])), digits)


def draw_clip_spec(genre: str, seed: int) -> ClipSpec:
    """Draw every musical and production choice of one clip from ``default_rng(seed)``."""
    _check_genre(genre)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    style = _STYLES[genre]
    rng = np.random.default_rng(seed)

    beats_per_bar = int(_pick(rng, style.meters))
    swing = _uniform(rng, style.swing) if rng.random() < style.swing_prob else 0.0
    mode, progression = _pick(rng, style.harmonies)
    patterns = [p for p in style.drum_patterns
                if p in _FREE_PATTERNS or len(next(iter(DRUM_PATTERNS[p].values()))) == 4 * beats_per_bar]
    drum_pattern = _pick(rng, patterns or ["waltz"])
    pad_program = int(_pick(rng, style.pad_programs))

    n_sections = 4
    arrangement = []
    for _ in range(n_sections):
        mask = [rng.random() < 0.9, rng.random() < 0.95, rng.random() < 0.9,
                pad_program >= 0 and rng.random() < 0.7, rng.random() < 0.8]
        if sum(mask[:3]) < 2:  # keep a rhythm section under every section
            mask[1] = mask[2] = True
        arrangement.append(tuple(bool(m) for m in mask))

    lowpass = (float(np.exp(rng.uniform(np.log(_LOWPASS_HZ[0]), np.log(_LOWPASS_HZ[1]))))
               if rng.random() < _LOWPASS_PROB else 1e9)
    return ClipSpec(
        genre=genre,
        seed=seed,
        tempo=_uniform(rng, style.tempo_bpm, 1),
        beats_per_bar=beats_per_bar,
        swing=swing,
        swing_unit=style.swing_unit,
        key=int(rng.integers(12)),
        mode=mode,
        progression=tuple(progression.split()),
        chord_bars=int(_pick(rng, style.chord_bars)),
        melody_scale=_pick(rng, style.melody_scales),
        drum_pattern=drum_pattern,
        drum_kit=int(_pick(rng, style.drum_kits)),
        bass_style=_pick(rng, style.bass_styles),
        bass_program=int(_pick(rng, style.bass_programs)),
        bass_low=int(rng.integers(style.bass_low[0], style.bass_low[1] + 1)),
        comp_style=_pick(rng, style.comp_styles),
        comp_program=int(_pick(rng, style.comp_programs)),
        comp_center=int(rng.integers(style.comp_center[0], style.comp_center[1] + 1)),
        pad_program=pad_program,
        melody_program=int(_pick(rng, style.melody_programs)),
        melody_density=_uniform(rng, style.melody_density),
        melody_quantum=int(_pick(rng, style.melody_quanta)),
        melody_legato=_uniform(rng, style.melody_legato),
        melody_center=int(rng.integers(style.melody_center[0], style.melody_center[1] + 1)),
        melody_range=int(rng.integers(7, 15)),
        melody_step=_uniform(rng, style.melody_step),
        melody_motif=_uniform(rng, style.melody_motif),
        melody_rest=_uniform(rng, style.melody_rest),
        melody_chromatic=_uniform(rng, style.melody_chromatic),
        melody_bend=_uniform(rng, style.melody_bend),
        melody_tremolo=_uniform(rng, style.melody_tremolo),
        section_bars=int(_pick(rng, (4, 8))),
        arrangement=tuple(arrangement),
        section_dynamics=tuple(_uniform(rng, (0.8, 1.1)) for _ in range(n_sections)),
        velocity=int(rng.integers(style.velocity[0], style.velocity[1] + 1)),
        part_levels=tuple(_uniform(rng, style.bass_level if part == "bass" else (0.75, 1.05)) for part in PARTS),
        part_volumes=tuple(int(rng.integers(_VOLUME_CC[0], _VOLUME_CC[1] + 1)) for _ in PARTS),
        part_pans=(64,) + tuple(int(rng.integers(_PAN_CC[0], _PAN_CC[1] + 1)) for _ in PARTS[1:]),
        reverb_send=int(rng.integers(style.reverb_send[0], style.reverb_send[1] + 1)),
        chorus_send=int(rng.integers(_CHORUS_CC[0], _CHORUS_CC[1] + 1)),
        humanize_ms=_uniform(rng, style.humanize_ms, 2),
        rubato=_uniform(rng, style.rubato),
        fill_prob=_uniform(rng, style.fill_prob),
        ghost_prob=_uniform(rng, style.ghost_prob),
        eq_tilt_db_per_octave=_uniform(rng, _EQ_TILT_DB_PER_OCTAVE, 3),
        highpass_hz=_uniform(rng, _HIGHPASS_HZ, 1),
        lowpass_hz=round(lowpass, 1),
        room_seconds=_uniform(rng, _ROOM_SECONDS, 3),
        room_wet=_uniform(rng, _ROOM_WET, 3),
        drive=_uniform(rng, style.drive, 3),
        noise_db=_uniform(rng, _NOISE_DB, 1),
        peak=_uniform(rng, _PEAK, 3),
    )


def clip_seed(corpus_seed: int, genre: str, index: int) -> int:
    """The seed of clip ``index`` of ``genre`` in a corpus: stable, distinct per (seed, genre, index).

    The genre enters through a CRC-32 of its name rather than its position in a list, so
    generating a subset of the genres does not change any clip.
    """
    entropy = [int(corpus_seed), zlib.crc32(genre.encode("utf-8")), int(index)]
    words = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 | int(words[1]) >> 1


# ---------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------


def parse_chord(symbol: str, key: int) -> tuple[int, tuple[int, ...]]:
    """Roman-numeral chord -> (root pitch class, intervals above the root).

    ``b``/``#`` prefixes flatten/sharpen the degree (of the major scale), upper case is a
    major triad, lower case minor; suffixes: 7, maj7, 9, maj9, 13, 6, 5 (power chord),
    h7 (half-diminished), o (diminished), sus4.
    """
    text, shift = symbol, 0
    while text[:1] in ("b", "#"):
        shift += -1 if text[0] == "b" else 1
        text = text[1:]
    numeral = ""
    while text[:1] and text[0].lower() in "iv":
        numeral += text[0]
        text = text[1:]
    if numeral.lower() not in _NUMERALS or text not in _QUALITIES or numeral not in (numeral.upper(), numeral.lower()):
        raise ValueError(f"cannot parse chord symbol {symbol!r}")
    upper = numeral.isupper()
    intervals = _QUALITIES[text][0 if upper else 1]
    return (key + _NUMERALS[numeral.lower()] + shift) % 12, intervals


class _Timeline:
    """Beat position -> seconds, with swing, rubato and per-note timing jitter."""

    def __init__(self, spec: ClipSpec, n_beats: int, rng: np.random.Generator):
        beat = 60.0 / spec.tempo
        k = np.arange(n_beats + 1)
        phrase = 4 * spec.beats_per_bar
        wobble = (np.sin(2 * np.pi * k / phrase + rng.uniform(0, 2 * np.pi))
                  + 0.5 * np.sin(2 * np.pi * k / (2.7 * phrase) + rng.uniform(0, 2 * np.pi)))
        durations = beat * np.exp(spec.rubato * wobble)
        self.beat_times = np.concatenate([[0.0], np.cumsum(durations)])
        self.swing = spec.swing
        self.pair = 2 * spec.swing_unit
        self.jitter = spec.humanize_ms / 1000.0
        self.rng = rng

    def at(self, beat: float) -> float:
        k = math.floor(beat / self.pair)
        x = beat / self.pair - k
        split = 0.5 + self.swing
        warped = x * split / 0.5 if x < 0.5 else split + (x - 0.5) * (1 - split) / 0.5
        b = (k + warped) * self.pair
        return float(np.interp(b, np.arange(len(self.beat_times)), self.beat_times))

    def humanized(self, beat: float) -> float:
        return max(0.0, self.at(beat) + float(np.clip(self.rng.normal(0, self.jitter), -3 * self.jitter,
                                                      3 * self.jitter)))


@dataclass
class _Chord:
    start: float  # beats
    length: float  # beats
    root: int  # pitch class
    intervals: tuple[int, ...]

    @property
    def pitch_classes(self) -> list[int]:
        return [(self.root + i) % 12 for i in self.intervals]


class _Composer:
    """Builds the notes of one clip; every random draw comes from ``self.rng``."""

    def __init__(self, spec: ClipSpec, seconds: float):
        import pretty_midi

        self.pm_lib = pretty_midi
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, 0x636F6D70])  # note-level stream, distinct from the spec's
        self.bpb = spec.beats_per_bar
        bar_seconds = self.bpb * 60.0 / spec.tempo * math.exp(-1.5 * spec.rubato)
        self.n_bars = int(math.ceil(seconds / bar_seconds)) + 1
        self.n_beats = self.n_bars * self.bpb
        self.end_seconds = seconds + 0.5
        self.timeline = _Timeline(spec, self.n_beats + 2 * self.bpb, self.rng)
        self.chords = self._chords()
        self.chord_starts = [c.start for c in self.chords]
        self.scale = MODES[spec.mode]

    # -- structure -------------------------------------------------------------------
    def _chords(self) -> list[_Chord]:
        spec = self.spec
        chords: list[_Chord] = []
        bar, i = 0, 0
        while bar < self.n_bars:
            symbols = spec.progression[i % len(spec.progression)].split("/")
            span = self.bpb * spec.chord_bars
            cuts = [round(span * j / len(symbols)) for j in range(len(symbols) + 1)]
            for j, symbol in enumerate(symbols):
                root, intervals = parse_chord(symbol, spec.key)
                chords.append(_Chord(bar * self.bpb + cuts[j], cuts[j + 1] - cuts[j], root, intervals))
            bar += spec.chord_bars
            i += 1
        return chords

    def chord_at(self, beat: float) -> _Chord:
        return self.chords[max(0, bisect.bisect_right(self.chord_starts, beat + 1e-9) - 1)]

    def section(self, bar: int) -> int:
        return (bar // self.spec.section_bars) % len(self.spec.arrangement)

    def plays(self, part: str, bar: int) -> bool:
        return self.spec.arrangement[self.section(bar)][PARTS.index(part)]

    def level(self, part: str, bar: int) -> float:
        spec = self.spec
        return spec.velocity * spec.part_levels[PARTS.index(part)] * spec.section_dynamics[self.section(bar)]

    # -- note helpers ------------------------------------------------------------------
    def add(self, inst, pitch: int, velocity: float, beat: float, length: float, offset_s: float = 0.0) -> None:
        start = self.timeline.humanized(beat) + offset_s
        if start >= self.end_seconds or not 0 <= pitch <= 127:
            return
        end = max(start + 0.03, self.timeline.at(beat + length) + offset_s)
        vel = int(np.clip(round(velocity * self.rng.uniform(0.9, 1.1)), 1, 127))
        inst.notes.append(self.pm_lib.Note(velocity=vel, pitch=int(pitch), start=start, end=end))

    def hit(self, inst, note: int, velocity: float, beat: float) -> None:
        start = self.timeline.humanized(beat)
        if start >= self.end_seconds:
            return
        vel = int(np.clip(round(velocity * self.rng.uniform(0.9, 1.05)), 1, 127))
        inst.notes.append(self.pm_lib.Note(velocity=vel, pitch=note, start=start, end=start + 0.1))

    def voicing(self, chord: _Chord, center: int, previous: list[int] | None, rootless: bool = False) -> list[int]:
        """Close-position voicing near ``center`` that moves least from ``previous``."""
        pcs = chord.pitch_classes
        if rootless and len(pcs) >= 4:
            pcs = pcs[1:]
        pcs = list(dict.fromkeys(pcs))
        best, best_cost = [], float("inf")
        previous_mean = None if previous is None else sum(previous) / len(previous)
        for r in range(len(pcs)):
            order = pcs[r:] + pcs[:r]
            notes = [order[0]]
            for pc in order[1:]:
                notes.append(notes[-1] + ((pc - notes[-1]) % 12 or 12))
            for octave in range(2, 9):
                cand = [n + 12 * octave for n in notes]
                mean = sum(cand) / len(cand)
                if previous_mean is None:
                    cost = abs(mean - center)
                else:  # voice leading first, with a weak pull back to the register centre
                    cost = abs(mean - previous_mean) + 0.3 * abs(cand[0] - previous[0]) + abs(mean - center) / 12
                if cost < best_cost:
                    best, best_cost = cand, cost
        return best

    # -- parts --------------------------------------------------------------------------
    def drums(self, inst) -> None:
        spec = self.spec
        rng = self.rng
        steps = 4 * self.bpb
        pattern = DRUM_PATTERNS.get(spec.drum_pattern, {})
        for bar in range(self.n_bars):
            if not self.plays("drums", bar):
                continue
            level = self.level("drums", bar)
            b0 = bar * self.bpb
            section_start = bar % spec.section_bars == 0
            fill = (bar % spec.section_bars == spec.section_bars - 1 and spec.drum_pattern != "none"
                    and rng.random() < spec.fill_prob)
            fill_from = steps - 4 * int(rng.integers(1, 3)) if fill else steps
            if spec.drum_pattern == "orchestral":
                if section_start:
                    self.hit(inst, CRASH, 0.7 * level, b0)
                self.hit(inst, KICK, 0.6 * level, b0)
                if rng.random() < 0.3:
                    self.hit(inst, KICK, 0.45 * level, b0 + self.bpb - 1)
                continue
            if spec.drum_pattern == "none":
                continue
            if section_start and bar > 0:
                self.hit(inst, CRASH, 0.9 * level, b0)
            for note, line in pattern.items():
                for step, ch in enumerate(line):
                    if ch == "-" or step >= fill_from:
                        continue
                    if note in (CLOSED_HAT, RIDE) and ch != "X" and rng.random() < 0.04:
                        self.hit(inst, OPEN_HAT if note == CLOSED_HAT else RIDE_BELL, 0.7 * level, b0 + step / 4)
                        continue
                    self.hit(inst, note, _HIT_LEVEL[ch] * level, b0 + step / 4)
            if spec.drum_pattern == "trap":  # hi-hat rolls: 32nd notes or triplets over one beat
                for beat in range(self.bpb):
                    if rng.random() < 0.25 and 4 * beat < fill_from:
                        division = int(_pick(rng, (6, 8)))
                        for j in range(division):
                            self.hit(inst, CLOSED_HAT, (0.45 + 0.4 * j / division) * level, b0 + beat + j / division)
            if spec.drum_pattern.startswith("jazz"):  # snare and kick comping on off-beats
                for step in range(2, min(steps, fill_from), 2):
                    if rng.random() < spec.ghost_prob:
                        self.hit(inst, SNARE if rng.random() < 0.75 else KICK, rng.uniform(0.3, 0.7) * level,
                                 b0 + step / 4)
            elif spec.ghost_prob > 0:
                snare_line = pattern.get(SNARE, "")
                for step in range(min(steps, fill_from)):
                    if (step % 4 in (1, 3) and (not snare_line or snare_line[step] == "-")
                            and rng.random() < spec.ghost_prob / 2):
                        self.hit(inst, SNARE, 0.3 * level, b0 + step / 4)
            if fill:
                toms = TOMS[int(rng.integers(0, 2)):]
                for j, step in enumerate(range(fill_from, steps)):
                    note = SNARE if rng.random() < 0.3 else toms[min(len(toms) - 1, j * len(toms) // (steps - fill_from))]
                    self.hit(inst, note, (0.7 + 0.3 * j / (steps - fill_from)) * level, b0 + step / 4)

    def bass(self, inst) -> None:
        spec, rng, bpb = self.spec, self.rng, self.bpb
        style = spec.bass_style
        low = spec.bass_low
        templates = {
            "reggae": [[(0, 1.5, 0), (1.5, 0.5, 7), (2, 0.75, 0), (3, 0.5, 10), (3.5, 0.5, 7)],
                       [(0.5, 0.5, 0), (1, 1, 0), (2.5, 0.5, 12), (3, 1, 7)],
                       [(0, 0.75, 0), (0.75, 0.25, 0), (1.5, 0.5, 3), (2.5, 1, 7)]],
            "syncop": [[(0, 0.5, 0), (0.75, 0.25, 12), (1.5, 0.25, 0), (2, 0.5, 7), (2.75, 0.25, 10), (3.5, 0.5, 0)],
                       [(0, 0.75, 0), (1, 0.25, 0), (1.5, 0.5, 12), (2.5, 0.5, 0), (3.25, 0.25, 7), (3.5, 0.5, 10)]],
            "sub": [[(0, 1.7, 0), (1.75, 0.75, 0), (2.5, 1.4, 0)], [(0, 3.5, 0)], [(0, 1.4, 0), (2.5, 1.4, 7)]],
        }
        template = _pick(rng, templates[style]) if style in templates else None
        walk_pitch = None
        for bar in range(self.n_bars):
            if not self.plays("bass", bar):
                continue
            level = self.level("bass", bar)
            b0 = bar * bpb
            for beat in range(bpb):
                chord = self.chord_at(b0 + beat)
                root = low + (chord.root - low) % 12
                third = 3 if 3 in chord.intervals and 4 not in chord.intervals else 4
                fifth = 7 if 7 in chord.intervals or 6 not in chord.intervals else 6
                seventh = 10 if 11 not in chord.intervals else 11
                next_chord = self.chord_at(b0 + beat + 1)
                next_root = low + (next_chord.root - low) % 12
                last_of_chord = next_chord is not chord
                t = b0 + beat
                if style == "walking":
                    if walk_pitch is None or t == chord.start:
                        pitch = root
                    elif last_of_chord:
                        pitch = next_root + int(_pick(rng, (-1, 1, 7 - 12)))
                    else:
                        options = [root + i for i in (0, third, fifth, seventh, 12, 2, 9)]
                        options = [p for p in options if abs(p - walk_pitch) <= 5 and p != walk_pitch] or [root + fifth]
                        pitch = int(_pick(rng, options))
                    walk_pitch = pitch
                    self.add(inst, pitch, level * (1.0 if beat % 2 == 0 else 0.9), t, 0.9)
                elif style == "root8":
                    for half in (0, 0.5):
                        pitch = root
                        if last_of_chord and half == 0.5 and rng.random() < 0.5:
                            pitch = next_root + int(_pick(rng, (-1, 2, -5)))
                        self.add(inst, pitch, level * (1.0 if half == 0 else 0.85), t + half, 0.45)
                elif style == "pedal16":
                    for q in range(4):
                        self.add(inst, root, level * (1.0 if q == 0 else 0.8), t + q / 4, 0.2)
                elif style == "octave":
                    self.add(inst, root, level, t, 0.4)
                    self.add(inst, root + 12, level * 0.9, t + 0.5, 0.35)
                elif style == "boogie":
                    line = (0, third, fifth, 9, 10 if seventh == 10 else 12, 9, fifth, third)
                    i = 2 * beat % len(line)
                    self.add(inst, root + line[i], level, t, 0.45)
                    self.add(inst, root + line[i + 1], level * 0.85, t + 0.5, 0.45)
                elif style == "root_fifth":
                    if bpb == 4 and beat % 2 == 1:
                        continue
                    pitch = root if beat == 0 or t == chord.start else root + fifth - 12
                    self.add(inst, pitch, level, t, 0.9 if bpb == 3 else 1.8)
                elif style == "classical":
                    if beat == 0:
                        self.add(inst, root, level, t, bpb / 2 * 0.95 if bpb == 4 else bpb * 0.95)
                    elif beat == 2 and bpb == 4:
                        self.add(inst, root + int(_pick(rng, (fifth, third, 0, -5))), level * 0.9, t, 1.9)
                elif beat == 0 and template is not None:
                    for offset, length, interval in template:
                        if offset < bpb:
                            step_chord = self.chord_at(t + offset)
                            step_root = low + (step_chord.root - low) % 12
                            if interval in (3, 4):
                                interval = third
                            self.add(inst, step_root + interval, level * (1.0 if offset == 0 else 0.85), t + offset,
                                     min(length, bpb - offset) * 0.95)

    def comp(self, inst) -> None:
        spec, rng, bpb = self.spec, self.rng, self.bpb
        style = spec.comp_style
        steps = 4 * bpb
        strum_masks = {4: ("x-x-x-x-x-x-x-x-", "x--x--x-x-x-x-x-", "x---x-x-x---x-x-", "x-x-x-xxx-x-x-xx"),
                       3: ("x-x-x-x-x-x-", "x---x-x-x-x-")}
        stab_masks = {4: ("--x--x----x--x--", "x--x--x---x---x-", "---x--x----x-x--"), 3: ("--x---x---x-",)}
        strum_mask = _pick(rng, strum_masks[bpb])
        stab_mask = _pick(rng, stab_masks[bpb])
        arp_rate = int(_pick(rng, (2, 4)))
        arp_shape = _pick(rng, ("up", "updown", "down"))
        previous, voiced, voicing = None, None, []
        for bar in range(self.n_bars):
            if not self.plays("comp", bar):
                continue
            level = self.level("comp", bar)
            b0 = bar * bpb
            muted = rng.random() < 0.6  # power chords: palm-muted eighths or ringing
            jazz_hits = sorted(rng.choice(np.arange(0, steps, 2), size=int(rng.integers(1, 4)), replace=False))
            for step in range(steps):
                t = b0 + step / 4
                chord = self.chord_at(t)
                if chord is not voiced:
                    voicing = self.voicing(chord, spec.comp_center, previous, rootless=style == "jazz_comp")
                    previous, voiced = voicing, chord
                chord_end = chord.start + chord.length
                if style in ("strum8", "strum16"):
                    mask = strum_mask if style == "strum8" else "x" * steps
                    if mask[step] != "x":
                        continue
                    down = step % 4 == 0 or style == "strum16" and step % 2 == 0
                    notes = voicing if down else voicing[1:]
                    length = 0.45 if style == "strum8" else 0.12
                    accent = 1.0 if down else 0.75
                    if style == "strum16" and step % 8 == 4:
                        accent = 1.1
                    delay = float(rng.uniform(0.008, 0.02))
                    ordered = notes if down else notes[::-1]
                    for j, pitch in enumerate(ordered):
                        self.add(inst, pitch, level * accent, t, length, offset_s=j * delay)
                elif style == "power":
                    low = spec.comp_center - 10  # power chords sit below the voicing register
                    root = low + (chord.root - low) % 12
                    shape = (root, root + 7, root + 12)
                    if muted and step % 2 == 0:
                        for pitch in shape:
                            self.add(inst, pitch, level * (1.0 if step % 4 == 0 else 0.85), t, 0.3)
                    elif not muted and abs(t - chord.start) < 1e-9:
                        for pitch in shape:
                            self.add(inst, pitch, level, t, chord.length * 0.95)
                elif style == "sustain":
                    if abs(t - chord.start) < 1e-9 or step == 0 and bar % 2 == 0 and chord.start < b0:
                        for pitch in voicing:
                            self.add(inst, pitch, level * 0.85, t, min(chord_end - t, 2 * bpb) * 0.97)
                elif style in ("skank", "skank8"):
                    hit = (step % 8 == 4) if style == "skank" else (step % 4 == 2)
                    if hit:
                        for pitch in voicing:
                            self.add(inst, pitch + 12 * (pitch < 60), level, t, 0.2)
                elif style == "jazz_comp":
                    if step in jazz_hits:
                        length = float(min(_pick(rng, (0.4, 0.8, 1.5)), chord_end - t))
                        for pitch in voicing:
                            self.add(inst, pitch, level * float(rng.uniform(0.7, 1.0)), t, length)
                elif style in ("arpeggio", "alberti"):
                    if step % (4 // arp_rate) != 0:
                        continue
                    k = step // (4 // arp_rate)
                    if style == "alberti":
                        order = (0, len(voicing) - 1, 1, len(voicing) - 1)
                        pitch = voicing[order[k % 4]]
                    else:
                        ladder = voicing + [p + 12 for p in voicing]
                        cycle = {"up": ladder, "down": ladder[::-1], "updown": ladder + ladder[-2:0:-1]}[arp_shape]
                        pitch = cycle[k % len(cycle)]
                    self.add(inst, pitch, level * (1.0 if step % 4 == 0 else 0.8), t, 1.6 / arp_rate)
                elif style == "stabs":
                    if stab_mask[step] == "x":
                        for pitch in voicing:
                            self.add(inst, pitch, level, t, 0.22)
                elif style == "block":
                    if step % 4 == 0:
                        for pitch in voicing:
                            self.add(inst, pitch, level * (1.0 if step == 0 else 0.85), t, 0.8)

    def pad(self, inst) -> None:
        previous = None
        for chord in self.chords:
            bar = int(chord.start // self.bpb)
            if bar >= self.n_bars or not self.plays("pad", bar):
                continue
            voicing = self.voicing(chord, self.spec.comp_center + 12, previous)
            previous = voicing
            for pitch in voicing:
                self.add(inst, pitch, self.level("pad", bar) * 0.6, chord.start, chord.length * 0.98)

    def _ladder(self) -> np.ndarray:
        spec = self.spec
        if spec.melody_scale == "pentatonic":
            scale = _PENTATONIC[4 in self.scale]
        elif spec.melody_scale == "blues":
            scale = _BLUES
        else:
            scale = self.scale
        pcs = {(spec.key + s) % 12 for s in scale}
        lo, hi = spec.melody_center - spec.melody_range, spec.melody_center + spec.melody_range
        return np.array([p for p in range(lo, hi + 1) if p % 12 in pcs])

    def melody(self, inst) -> None:
        spec, rng, bpb = self.spec, self.rng, self.bpb
        ladder = self._ladder()
        q = spec.melody_quantum
        phrase_bars = 2
        n_steps = phrase_bars * bpb * q
        motif: tuple[list[int], list[int]] | None = None
        idx = int(np.argmin(np.abs(ladder - spec.melody_center)))
        for pb in range(0, self.n_bars, phrase_bars):
            if not self.plays("melody", pb) or rng.random() < spec.melody_rest:
                continue
            if motif is not None and rng.random() < spec.melody_motif:
                onsets, moves = motif
            else:
                weights = np.array([1.6 if s % (bpb * q) == 0 else 1.2 if s % q == 0 else 0.8 if 2 * (s % q) == q
                                    else 0.6 for s in range(n_steps)])
                weights[-q:] *= 0.3  # breathe at the phrase end
                probs = np.clip(weights * spec.melody_density / q, 0, 0.95)
                onsets = [s for s in range(n_steps) if rng.random() < probs[s]] or [0]
                moves = []
                for _ in onsets:
                    r = rng.random()
                    if r < 0.1:
                        moves.append(0)
                    elif r < 0.1 + 0.9 * spec.melody_step:
                        moves.append(int(_pick(rng, (-1, 1))))
                    else:
                        moves.append(int(rng.integers(2, 5)) * int(_pick(rng, (-1, 1))))
                motif = (onsets, moves)
            level = self.level("melody", pb)
            for j, (s, move) in enumerate(zip(onsets, moves)):
                t = pb * bpb + s / q
                idx += move
                if idx < 0 or idx >= len(ladder):  # reflect at the register edges
                    idx = -idx if idx < 0 else 2 * (len(ladder) - 1) - idx
                    idx = int(np.clip(idx, 0, len(ladder) - 1))
                pitch = int(ladder[idx])
                chord = self.chord_at(t)
                if s % q == 0 and rng.random() < 0.6:  # chord tone on the beat
                    candidates = [p for p in range(pitch - 2, pitch + 3) if p % 12 in chord.pitch_classes]
                    if candidates:
                        pitch = min(candidates, key=lambda p: abs(p - pitch))
                gap = ((onsets[j + 1] - s) / q) if j + 1 < len(onsets) else min(2.0, (n_steps - s) / q)
                length = max(0.1, gap * spec.melody_legato)
                velocity = level * (1.05 if s % (bpb * q) == 0 else 1.0 if s % q == 0 else 0.88)
                if rng.random() < spec.melody_chromatic and s > 0 and gap >= 0.5:
                    self.add(inst, pitch - 1, velocity * 0.8, t - 0.5 / q, 0.45 / q)
                if length >= 1.0 and rng.random() < spec.melody_tremolo:
                    for r in range(int(length * 4)):
                        self.add(inst, pitch, velocity * (0.95 if r % 2 == 0 else 0.8), t + r / 4, 0.2)
                    continue
                self.add(inst, pitch, velocity, t, length)
                if length >= 0.5 and rng.random() < spec.melody_bend:
                    start = inst.notes[-1].start if inst.notes else self.timeline.at(t)
                    depth = int(_pick(rng, (-4096, -8191)))  # one or two semitones below, default +-2 range
                    glide = float(rng.uniform(0.05, 0.15))
                    for k in range(5):
                        inst.pitch_bends.append(self.pm_lib.PitchBend(pitch=int(depth * (1 - k / 4)),
                                                                      time=start + glide * k / 4))

    # -- assembly -----------------------------------------------------------------------
    def build(self):
        pretty_midi = self.pm_lib
        spec = self.spec
        pm = pretty_midi.PrettyMIDI(initial_tempo=spec.tempo)
        pm.time_signature_changes.append(pretty_midi.TimeSignature(spec.beats_per_bar, 4, 0.0))
        programs = {"drums": spec.drum_kit, "bass": spec.bass_program, "comp": spec.comp_program,
                    "pad": spec.pad_program, "melody": spec.melody_program}
        for i, part in enumerate(PARTS):
            if programs[part] < 0:
                continue
            inst = pretty_midi.Instrument(program=programs[part], is_drum=part == "drums", name=part)
            for number, value in ((7, spec.part_volumes[i]), (10, spec.part_pans[i]), (91, spec.reverb_send),
                                  (93, spec.chorus_send)):
                inst.control_changes.append(pretty_midi.ControlChange(number=number, value=int(value), time=0.0))
            getattr(self, part)(inst)
            inst.notes.sort(key=lambda n: (n.start, n.pitch))
            if inst.notes:
                pm.instruments.append(inst)
        return pm


def compose(spec: ClipSpec, seconds: float = 30.0):
    """The clip as a ``pretty_midi.PrettyMIDI``: drums (channel 10), bass, chords, optional pad, melody.

    Notes are written for ``seconds`` plus half a second of tail; each instrument carries
    its CC7 volume, CC10 pan, CC91 reverb and CC93 chorus sends at time 0.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return _Composer(spec, seconds).build()


# ---------------------------------------------------------------------------------------
# Rendering and post-effects
# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    import pretty_midi

    return Path(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2").read_bytes()


def apply_effects(audio: np.ndarray, spec: ClipSpec, sample_rate: int) -> np.ndarray:
    """The spec's production chain on a mono signal ``(n,)``; returns ``(n,)`` float64.

    Zero-phase EQ (tilt around 1 kHz, 2nd-order high-pass, 4th-order low-pass magnitude),
    a synthetic room (exponentially decaying noise with RT60 ``room_seconds``), tanh
    saturation and a pink noise floor. Peak normalisation is left to :func:`render`.
    """
    from scipy.signal import fftconvolve

    rng = np.random.default_rng([spec.seed, 0x66782100])
    n = len(audio)
    x = np.asarray(audio, dtype=np.float64)
    if not np.any(x):
        return x
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    f = np.maximum(freqs, 1.0)
    gain = 10 ** (spec.eq_tilt_db_per_octave * np.log2(np.clip(f, 50.0, 12000.0) / 1000.0) / 20)
    gain /= np.sqrt(1 + (spec.highpass_hz / f) ** 4)
    gain /= np.sqrt(1 + (f / spec.lowpass_hz) ** 8)
    x = np.fft.irfft(np.fft.rfft(x) * gain, n)

    ir_len = max(1, int(min(spec.room_seconds, 3.0) * sample_rate))
    t = np.arange(ir_len) / sample_rate
    ir = rng.standard_normal(ir_len) * np.exp(-6.9 * t / spec.room_seconds)
    ir /= np.linalg.norm(ir)
    x = x + spec.room_wet * fftconvolve(x, ir)[:n]

    x = np.tanh(spec.drive * x / np.max(np.abs(x))) / np.tanh(spec.drive)

    spectrum = np.fft.rfft(rng.standard_normal(n))
    noise = np.fft.irfft(spectrum / np.sqrt(f), n)  # pink: power falls as 1/f
    rms = float(np.sqrt(np.mean(x ** 2)))
    noise *= rms * 10 ** (spec.noise_db / 20) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    return x + noise


def render(midi, sample_rate: int = 22050, seconds: float = 30.0, spec: ClipSpec | None = None) -> np.ndarray:
    """Synthesize ``midi`` with the bundled SoundFont -> float32 mono ``(round(seconds * sample_rate),)``.

    The synthesizer's stereo output is averaged to mono, resampled (polyphase) to
    ``sample_rate``, trimmed or zero-padded to exactly ``seconds``, passed through the
    spec's post-effects when ``spec`` is given, and peak-normalised to ``spec.peak``
    (0.9 without a spec). A silent render stays silent.
    """
    import midirenderer
    import soundfile
    from scipy.signal import resample_poly

    if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an integer of at least 8000 Hz, got {sample_rate!r}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    buffer = io.BytesIO()
    midi.write(buffer)
    wav = midirenderer.render_wave_from(_soundfont_bytes(), buffer.getvalue())
    stereo, synth_rate = soundfile.read(io.BytesIO(wav), dtype="float64", always_2d=True)
    mono = stereo.mean(axis=1)
    g = math.gcd(int(sample_rate), int(synth_rate))
    if sample_rate != synth_rate:
        mono = resample_poly(mono, int(sample_rate) // g, int(synth_rate) // g)
    n = int(round(seconds * sample_rate))
    mono = mono[:n] if len(mono) >= n else np.pad(mono, (0, n - len(mono)))
    if spec is not None:
        mono = apply_effects(mono, spec, int(sample_rate))
    peak = float(np.max(np.abs(mono)))
    if peak > 0:
        mono = mono * ((spec.peak if spec is not None else 0.9) / peak)
    return mono.astype(np.float32)


def generate_clip(genre: str, seed: int, sample_rate: int = 22050, seconds: float = 30.0) -> np.ndarray:
    """One clip, float32 mono ``(round(seconds * sample_rate),)``; same arguments -> same samples."""
    spec = draw_clip_spec(genre, seed)
    return render(compose(spec, seconds), sample_rate=sample_rate, seconds=seconds, spec=spec)


# ---------------------------------------------------------------------------------------
# Corpus on disk
# ---------------------------------------------------------------------------------------

_WAV_HEADER_BYTES = 44  # libsndfile's canonical RIFF/WAVE header for 16-bit PCM


def _expected_bytes(seconds: float, sample_rate: int) -> int:
    return _WAV_HEADER_BYTES + 2 * int(round(seconds * sample_rate))


def _write_clip(job: tuple[str, int, str, float, int]) -> str:
    """Render one clip and write it atomically (tmp file + os.replace); returns its path."""
    import soundfile

    genre, seed, path, seconds, sample_rate = job
    audio = generate_clip(genre, seed, sample_rate=sample_rate, seconds=seconds)
    tmp = f"{path}.tmp.{os.getpid()}"
    soundfile.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    return path


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder split of ``n`` items; a split with a positive fraction gets at least one
    item whenever ``n`` allows it."""
    raw = [n * f for f in fractions]
    counts = [int(math.floor(r)) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _check_params(out: Path, params: dict) -> None:
    """Refuse to complete a folder made with other settings (its clips would be skipped as done)."""
    path = out / "corpus.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != params:
            raise ValueError(f"{out} holds a corpus made with {old}, not {params}; "
                             "use another out_dir or delete that one")
        return
    tmp = path.with_name("corpus.json.tmp")
    tmp.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def generate_corpus(out_dir: str | os.PathLike, clips_per_genre: int, *, seed: int = 0,
                    genres: Sequence[str] = GENRES, seconds: float = 30.0, sample_rate: int = 22050,
                    workers: int = 1, splits: Sequence[float] = (0.7, 0.15, 0.15)) -> Path:
    """Write ``out_dir/audio/<genre>/<genre>.<idx:05d>.wav`` and ``out_dir/manifest.csv``; return the manifest path.

    Clip ``idx`` of ``genre`` uses :func:`clip_seed` ``(seed, genre, idx)``. A clip already on
    disk with the exact byte size of a ``seconds``-long 16-bit mono WAV is kept, so a rerun
    is idempotent and an interrupted run resumes; ``out_dir/corpus.json`` records seed,
    seconds, sample rate and :data:`CORPUS_VERSION`, and a folder made with other values is
    refused. Splits (train, valid, test fractions) are stratified per genre and drawn from
    ``seed``. ``workers > 1`` renders in a process pool with identical output.
    """
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from s3t.manifest import SPLITS, ManifestRow, write_manifest

    if isinstance(clips_per_genre, bool) or not isinstance(clips_per_genre, int) or clips_per_genre < 1:
        raise ValueError(f"clips_per_genre must be a positive integer, got {clips_per_genre!r}")
    genres = tuple(genres)
    if not genres:
        raise ValueError("genres is empty; pass at least one of " + ", ".join(GENRES))
    for genre in genres:
        _check_genre(genre)
    if len(set(genres)) != len(genres):
        raise ValueError(f"genres has duplicates: {genres}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(sample_rate, int) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an integer of at least 8000 Hz, got {sample_rate!r}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    splits = tuple(float(s) for s in splits)
    if len(splits) != len(SPLITS) or min(splits) < 0 or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits must be {len(SPLITS)} non-negative fractions ({', '.join(SPLITS)}) "
                         f"summing to 1, got {splits}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_params(out, {"version": CORPUS_VERSION, "seed": seed, "seconds": float(seconds),
                        "sample_rate": sample_rate})
    expected = _expected_bytes(seconds, sample_rate)
    jobs, rows = [], []
    for genre in genres:
        folder = out / "audio" / genre
        folder.mkdir(parents=True, exist_ok=True)
        order = np.random.default_rng([seed, zlib.crc32(genre.encode("utf-8")), 0x73706C74]).permutation(
            clips_per_genre)
        split_of = np.empty(clips_per_genre, dtype=object)
        start = 0
        for name, count in zip(SPLITS, split_counts(clips_per_genre, splits)):
            split_of[order[start:start + count]] = name
            start += count
        for idx in range(clips_per_genre):
            path = folder / f"{genre}.{idx:05d}.wav"
            rows.append(ManifestRow(path=str(path.resolve()), labels=(genre,), split=str(split_of[idx])))
            if not (path.is_file() and path.stat().st_size == expected):
                jobs.append((genre, clip_seed(seed, genre, idx), str(path), float(seconds), sample_rate))
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            _write_clip(job)
    else:
        # spawn, not fork: the caller may hold threads (torch, BLAS) that a fork would corrupt
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(_write_clip, jobs, chunksize=1):
                pass
    manifest = out / "manifest.csv"
    write_manifest(rows, manifest)
    return manifest
