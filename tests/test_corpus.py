"""Tests of the generated corpus: determinism, real audio, on-disk layout, manifest and splits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s3t import corpus
from s3t.manifest import read_manifest

SECONDS = 3.0
SR = 22050


def test_import_needs_only_numpy():
    code = "import sys, s3t.corpus; print(sorted(m for m in ('pretty_midi', 'midirenderer', 'soundfile', " \
           "'scipy.signal') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_at_least_eight_genres_each_with_a_style():
    assert len(corpus.GENRES) >= 8
    assert len(set(corpus.GENRES)) == len(corpus.GENRES)
    for genre in corpus.GENRES:
        assert corpus.genre_style(genre).tempo_bpm[0] < corpus.genre_style(genre).tempo_bpm[1]


def test_draw_clip_spec_is_deterministic_and_seed_dependent():
    for genre in corpus.GENRES:
        a, b, c = corpus.draw_clip_spec(genre, 11), corpus.draw_clip_spec(genre, 11), corpus.draw_clip_spec(genre, 12)
        assert a == b
        assert a != c
        style = corpus.genre_style(genre)
        assert style.tempo_bpm[0] <= a.tempo <= style.tempo_bpm[1]
        assert a.genre == genre and a.seed == 11
        assert 0 <= a.key < 12 and a.mode in corpus.MODES


def test_specs_vary_across_seeds_within_a_genre():
    specs = [corpus.draw_clip_spec("pop", seed) for seed in range(40)]
    assert len({s.key for s in specs}) >= 8
    assert len({s.tempo for s in specs}) == 40
    assert len({s.comp_program for s in specs}) >= 3
    assert len({s.progression for s in specs}) >= 3


def test_genre_tempo_ranges_overlap():
    def overlap(a: str, b: str) -> bool:
        (lo_a, hi_a), (lo_b, hi_b) = corpus.genre_style(a).tempo_bpm, corpus.genre_style(b).tempo_bpm
        return lo_a < hi_b and lo_b < hi_a

    for pair in (("hiphop", "reggae"), ("rock", "metal"), ("jazz", "country"), ("pop", "disco"), ("blues", "classical")):
        assert overlap(*pair), pair
    # no genre can be told apart by tempo alone: each overlaps at least three others
    for genre in corpus.GENRES:
        assert sum(overlap(genre, other) for other in corpus.GENRES if other != genre) >= 3, genre


def test_unknown_genre_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown genre"):
        corpus.draw_clip_spec("polka", 0)
    with pytest.raises(ValueError, match="unknown genre"):
        corpus.generate_clip("polka", 0, seconds=SECONDS)
    with pytest.raises(ValueError, match="unknown genre"):
        corpus.generate_corpus(tmp_path, 1, genres=("rock", "polka"), seconds=SECONDS)
    with pytest.raises(ValueError, match="seed"):
        corpus.draw_clip_spec("rock", -1)


def test_parse_chord_roman_numerals():
    assert corpus.parse_chord("V7", key=0) == (7, (0, 4, 7, 10))
    assert corpus.parse_chord("bVII", key=2) == (0, (0, 4, 7))  # C major in D
    assert corpus.parse_chord("iih7", key=9) == (11, (0, 3, 6, 10))  # B half-diminished in A
    assert corpus.parse_chord("i5", key=4) == (4, (0, 7, 12))
    with pytest.raises(ValueError, match="chord symbol"):
        corpus.parse_chord("Xmaj7", key=0)


def test_drum_patterns_are_whole_bars():
    for name, pattern in corpus.DRUM_PATTERNS.items():
        lengths = {len(line) for line in pattern.values()}
        assert lengths in ({16}, {12}), name
        assert all(set(line) <= set("Xxo.-") for line in pattern.values()), name


def test_compose_builds_the_band():
    spec = corpus.draw_clip_spec("rock", 5)
    midi = corpus.compose(spec, seconds=SECONDS)
    drums = [inst for inst in midi.instruments if inst.is_drum]
    assert len(drums) == 1 and drums[0].program == spec.drum_kit
    programs = {inst.program for inst in midi.instruments if not inst.is_drum}
    assert spec.bass_program in programs and spec.comp_program in programs
    np.testing.assert_allclose(midi.get_tempo_changes()[1][0], spec.tempo, rtol=1e-3)
    bass = next(inst for inst in midi.instruments if inst.name == "bass")
    assert all(note.pitch < 60 for note in bass.notes)
    starts = [note.start for inst in midi.instruments for note in inst.notes]
    assert min(starts) >= 0 and max(starts) < SECONDS + 0.5


def test_render_is_float32_mono_exact_length_and_audible():
    audio = corpus.generate_clip("jazz", 3, sample_rate=SR, seconds=SECONDS)
    assert audio.dtype == np.float32 and audio.shape == (int(SECONDS * SR),)
    assert np.all(np.isfinite(audio))
    assert np.sqrt(np.mean(audio ** 2)) > 0.01
    np.testing.assert_allclose(np.max(np.abs(audio)), corpus.draw_clip_spec("jazz", 3).peak, rtol=1e-5)


def test_render_keeps_pitch_after_resampling():
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    flute = pretty_midi.Instrument(program=73)
    flute.notes.append(pretty_midi.Note(velocity=100, pitch=69, start=0.1, end=1.9))
    midi.instruments.append(flute)
    audio = corpus.render(midi, sample_rate=16000, seconds=2.0)
    assert audio.shape == (32000,)
    spectrum = np.abs(np.fft.rfft(audio[1600:30400] * np.hanning(28800)))
    peak_hz = np.fft.rfftfreq(28800, 1 / 16000)[np.argmax(spectrum)]
    assert abs(peak_hz - 440.0) < 5.0


def test_same_seed_identical_different_seed_different():
    a = corpus.generate_clip("reggae", 21, seconds=SECONDS)
    b = corpus.generate_clip("reggae", 21, seconds=SECONDS)
    c = corpus.generate_clip("reggae", 22, seconds=SECONDS)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_every_genre_renders_audio():
    for genre in corpus.GENRES:
        audio = corpus.generate_clip(genre, 1, seconds=2.0)
        assert np.sqrt(np.mean(audio ** 2)) > 0.01, genre


def test_clip_seed_is_stable_and_distinct():
    seeds = {corpus.clip_seed(0, genre, idx) for genre in corpus.GENRES for idx in range(50)}
    assert len(seeds) == 50 * len(corpus.GENRES)
    assert corpus.clip_seed(0, "rock", 3) == corpus.clip_seed(0, "rock", 3) != corpus.clip_seed(1, "rock", 3)


def test_split_counts():
    assert corpus.split_counts(20, (0.7, 0.15, 0.15)) == [14, 3, 3]
    assert corpus.split_counts(4, (0.7, 0.15, 0.15)) == [2, 1, 1]
    assert corpus.split_counts(3, (0.7, 0.15, 0.15)) == [1, 1, 1]
    assert corpus.split_counts(2, (0.7, 0.15, 0.15)) == [2, 0, 0]
    assert corpus.split_counts(10, (1.0, 0.0, 0.0)) == [10, 0, 0]
    assert sum(corpus.split_counts(37, (0.6, 0.3, 0.1))) == 37


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    manifest = corpus.generate_corpus(out, 4, seed=7, genres=("jazz", "metal"), seconds=SECONDS)
    return out, manifest


def test_generate_corpus_layout_and_manifest(small_corpus):
    import soundfile

    out, manifest = small_corpus
    assert manifest == out / "manifest.csv"
    rows = read_manifest(manifest)
    assert len(rows) == 8
    for genre in ("jazz", "metal"):
        files = sorted((out / "audio" / genre).glob("*.wav"))
        assert [f.name for f in files] == [f"{genre}.{i:05d}.wav" for i in range(4)]
        genre_rows = [r for r in rows if r.labels == (genre,)]
        assert sorted(Path(r.path).name for r in genre_rows) == [f.name for f in files]
        assert all(Path(r.path).parent.name == genre for r in genre_rows)
        splits = [r.split for r in genre_rows]
        assert [splits.count(s) for s in ("train", "valid", "test")] == [2, 1, 1]
        info = soundfile.info(str(files[0]))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, int(SECONDS * SR), "PCM_16")
    # the files hold the clips of their seeds (up to 16-bit quantisation)
    audio, _ = soundfile.read(str(out / "audio" / "metal" / "metal.00002.wav"), dtype="float32")
    expected = corpus.generate_clip("metal", corpus.clip_seed(7, "metal", 2), seconds=SECONDS)
    np.testing.assert_allclose(audio, expected, atol=1.5 / 32768)
    assert not list(out.rglob("*.tmp*"))


def test_generate_corpus_rerun_is_idempotent(small_corpus):
    out, manifest = small_corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    text = manifest.read_text()
    corpus.generate_corpus(out, 4, seed=7, genres=("jazz", "metal"), seconds=SECONDS)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before
    assert manifest.read_text() == text


def test_generate_corpus_resumes_a_missing_clip_and_refuses_other_settings(small_corpus):
    out, _ = small_corpus
    victim = out / "audio" / "jazz" / "jazz.00001.wav"
    content = victim.read_bytes()
    victim.write_bytes(content[:1000])  # a truncated clip is redone
    corpus.generate_corpus(out, 4, seed=7, genres=("jazz", "metal"), seconds=SECONDS)
    assert victim.read_bytes() == content
    with pytest.raises(ValueError, match="another out_dir"):
        corpus.generate_corpus(out, 4, seed=8, genres=("jazz", "metal"), seconds=SECONDS)


def test_generate_corpus_with_two_workers_matches_one(small_corpus, tmp_path):
    out, manifest = small_corpus
    corpus.generate_corpus(tmp_path, 4, seed=7, genres=("jazz", "metal"), seconds=SECONDS, workers=2)
    single = sorted(p.relative_to(out) for p in out.rglob("*.wav"))
    double = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.wav"))
    assert single == double
    for rel in single:
        assert (out / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    assert (tmp_path / "manifest.csv").read_text() == manifest.read_text()


def test_generate_corpus_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="clips_per_genre"):
        corpus.generate_corpus(tmp_path, 0)
    with pytest.raises(ValueError, match="splits"):
        corpus.generate_corpus(tmp_path, 2, splits=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="workers"):
        corpus.generate_corpus(tmp_path, 2, workers=0)


def test_every_style_draws_from_known_names():
    for genre in corpus.GENRES:
        style = corpus.genre_style(genre)
        assert set(style.bass_styles) <= set(corpus.BASS_STYLES), genre
        assert set(style.comp_styles) <= set(corpus.COMP_STYLES), genre
        assert set(style.drum_patterns) <= set(corpus.DRUM_PATTERNS) | {"none", "orchestral"}, genre
        assert set(style.melody_scales) <= {"mode", "pentatonic", "blues"}, genre
        for mode, progression in style.harmonies:
            assert mode in corpus.MODES, (genre, mode)
            for bar in progression.split():
                for symbol in bar.split("/"):
                    corpus.parse_chord(symbol, key=0)
        programs = style.bass_programs + style.comp_programs + style.melody_programs + style.pad_programs
        assert all(-1 <= p <= 127 for p in programs) and min(style.bass_programs + style.melody_programs) >= 0
