"""Tests for s3t.shards (and the decoding/batching it shares with s3t.features): real audio
files and every kind of bad file, features equal to the per-file CQT, identical results with
worker processes, resuming after an interruption, and a bounded number of decodes in flight."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import multiprocessing
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import s3t.features as features
from s3t.audio import load_audio
from s3t.cqt import CQT, CQTConfig, num_frames
from s3t.features import DecodeJob, cqt_batch, decode_files, featurize_files
from s3t.manifest import ManifestRow, read_manifest, write_manifest
from s3t.shards import (
    UNLABELED,
    audio_hours,
    clip_recordings,
    INDEX_COLUMNS,
    ClipSource,
    FeatureStore,
    Recompressed,
    IncompleteShardsError,
    ShardJob,
    ShardPlanError,
    _atomic,
    featurize_shard,
    featurize_to_shards,
    merge_shards,
    plan_shards,
    prepare_shards,
    pretraining_clips,
    sources_from_folder,
    sources_from_manifest,
)
from tests.conftest import tone

sf = pytest.importorskip("soundfile")

CFG = CQTConfig(time_compression=4)
CLIPS_PER_SHARD = 3
MIN_SECONDS = 0.5
# A4, A2 and A5 sit in bins 45, 21 and 57 of the 84-bin CQT from C1 (12 bins per octave).
GOOD = {  # clip id -> (file name, Hz, seconds, source rate, channels, split, labels)
    "a4": ("a4.wav", 440.0, 1.3, 22050, 1, "train", ("pop",)),
    "a2": ("a2.flac", 110.0, 0.9, 44100, 2, "train", ("rock", "loud")),
    "a5": ("a5.wav", 880.0, 2.0, 16000, 1, "valid", ("pop",)),
    "a4long": ("a4long.flac", 440.0, 3.1, 22050, 1, "test", ()),
    "a2b": ("a2b.wav", 110.0, 0.7, 22050, 1, "test", ("rock",)),
}
BAD = {  # clip id -> (file name, expected reason prefix)
    "zero": ("zero.wav", "zero bytes"),
    "text": ("text.wav", "not decodable as audio"),
    "truncated": ("truncated.wav", "not decodable as audio"),
    "silent": ("silent.wav", "silent"),
    "nan": ("nan.wav", "non-finite samples"),
    "short": ("short.wav", "too short"),
    "folder": ("folder.wav", "a folder, not an audio file"),
    "missing": ("missing.wav", "file not found"),
}
PEAK_BIN = {110.0: 21, 440.0: 45, 880.0: 57}


def _write_corpus(root: Path) -> list[ClipSource]:
    root.mkdir(parents=True, exist_ok=True)
    sources = []
    for clip_id, (name, hz, seconds, rate, channels, split, labels) in GOOD.items():
        y = tone(hz, seconds=seconds, sample_rate=rate)
        sf.write(root / name, np.stack([y] * channels, axis=1) if channels > 1 else y, rate)
        sources.append(ClipSource(clip_id, str(root / name), "toy", split, labels))
    (root / "zero.wav").write_bytes(b"")
    (root / "text.wav").write_text("these are words, not samples\n" * 20)
    sf.write(root / "whole.wav", tone(440.0, seconds=1.0), 22050)
    (root / "truncated.wav").write_bytes((root / "whole.wav").read_bytes()[:30])  # cut inside the header
    (root / "whole.wav").unlink()
    sf.write(root / "silent.wav", np.zeros(22050, np.float32), 22050)
    y = tone(440.0, seconds=1.0)
    y[100] = np.nan
    sf.write(root / "nan.wav", y, 22050, subtype="FLOAT")
    sf.write(root / "short.wav", tone(440.0, seconds=0.2), 22050)
    (root / "folder.wav").mkdir()
    for clip_id, (name, _) in BAD.items():
        sources.append(ClipSource(clip_id, str(root / name), "toy", "train"))
    return sources


def _run(sources, out, **kwargs):
    kwargs = {"clips_per_shard": CLIPS_PER_SHARD, "batch_size": 2, "min_seconds": MIN_SECONDS, **kwargs}
    return featurize_to_shards(sources, out, CFG, **kwargs)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _mtimes(out: Path, shard: int) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob(f"shard-{shard:05d}*")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write_corpus(tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    return out, _run(corpus, out)


def test_every_input_is_stored_or_rejected_with_its_reason(corpus, baseline):
    out, summary = baseline
    index, rejects = _read_csv(out / "index.csv"), _read_csv(out / "rejects.csv")
    assert [r["clip_id"] for r in index] == sorted(GOOD)
    assert tuple(index[0]) == INDEX_COLUMNS
    reasons = {r["clip_id"]: r["reason"] for r in rejects}
    assert set(reasons) == set(BAD)
    for clip_id, (name, prefix) in BAD.items():
        assert reasons[clip_id].startswith(prefix), (clip_id, reasons[clip_id])
    assert {r["path"] for r in rejects} == {s.path for s in corpus if s.clip_id in BAD}
    assert summary["inputs"] == len(corpus) == summary["clips"] + summary["rejected"]
    assert summary["clips"] == len(GOOD) and summary["rejected"] == len(BAD)
    assert summary["rejected_by_reason"] == {
        "file not found": 1, "non-finite samples": 1, "a folder, not an audio file": 1, "not decodable as audio": 2,
        "silent": 1, "too short": 1, "zero bytes": 1,
    }
    assert summary["frames"] == sum(int(r["frames"]) for r in index)
    assert summary["audio_seconds"] == pytest.approx(sum(GOOD[c][2] for c in GOOD), abs=1e-3)
    run_keys = {"shards_resumed", "clips_this_run", "wall_s", "decode_s", "decode_wait_s", "cqt_s", "write_s"}
    assert run_keys <= summary.keys()
    # The file holds the corpus counts only: no timing makes two runs' stores differ.
    assert json.loads((out / "summary.json").read_text()) == {k: v for k, v in summary.items() if k not in run_keys}
    assert not list(out.rglob("*.tmp"))


def test_stored_features_equal_the_cqt_of_each_file(baseline):
    out, _ = baseline
    cqt = CQT.from_config(CFG)
    store = FeatureStore(out)
    for i, row in enumerate(store.rows):
        wave = load_audio(row["path"], CFG.sample_rate)
        with torch.no_grad():
            expected = cqt(torch.from_numpy(wave))[0]  # (84, frames)
        stored = store[i]
        assert stored.dtype == torch.float32 and stored.shape == expected.shape == (84, row["frames"])
        assert row["frames"] == num_frames(wave.shape[0], CFG)
        assert row["duration_s"] == pytest.approx(GOOD[row["clip_id"]][2], abs=1e-3)
        # float16 keeps 11 significant bits: relative error <= 2**-11.
        torch.testing.assert_close(stored, expected, rtol=1e-3, atol=1e-3)
        values = stored.double()
        assert (row["mean"], row["std"], row["min"], row["max"]) == pytest.approx(
            (values.mean().item(), values.std(unbiased=False).item(), values.min().item(), values.max().item())
        )


def test_feature_store_shapes_peaks_labels_and_filters(baseline):
    out, _ = baseline
    store = FeatureStore(out)
    assert len(store) == len(GOOD) and store.clip_ids == sorted(GOOD)
    assert store.cqt_config == CFG
    for clip_id, spec, labels, split in zip(store.clip_ids, store, store.labels, store.splits):
        _, hz, seconds, _, _, want_split, want_labels = GOOD[clip_id]
        assert spec.shape == (84, math.ceil((1 + round(seconds * 22050) // 512) / 4))
        assert int(spec.mean(dim=1).argmax()) == PEAK_BIN[hz]
        assert labels == want_labels and split == want_split
    assert [t.shape for t in store[1:3]] == [store[1].shape, store[2].shape]
    torch.testing.assert_close(store[-1], store[len(store) - 1])
    torch.testing.assert_close(store[torch.tensor(2)], store[2])  # what pretrain's index tensors give
    with pytest.raises(IndexError):
        store[len(store)]
    train = FeatureStore(out, split="train")
    assert train.clip_ids == ["a2", "a4"] and train.labels == [("rock", "loud"), ("pop",)]
    assert len(FeatureStore(out, dataset="other")) == 0
    clone = pickle.loads(pickle.dumps(store))
    torch.testing.assert_close(clone[3], store[3])


def test_pretraining_clips_select_splits_add_the_unlabeled_store_and_name_their_data(baseline, tmp_path):
    out, _ = baseline
    root = tmp_path / "store"
    shutil.copytree(out, root)
    store = FeatureStore(root)
    train = [i for i, split in enumerate(store.splits) if split == "train"]
    clips, digest = pretraining_clips(root, ["train"])
    assert len(clips) == len(train) == 2
    torch.testing.assert_close(clips[1], store[train[1]])
    assert pretraining_clips(root, ["train"])[1] == digest
    assert pretraining_clips(root, ["train", "valid"])[1] != digest
    with pytest.raises(FileNotFoundError):
        pretraining_clips(root, ["train", UNLABELED])
    shutil.copytree(out, root / UNLABELED)
    both, with_unlabeled = pretraining_clips(root, ["train", UNLABELED])
    assert len(both) == len(train) + len(store) and with_unlabeled != digest
    torch.testing.assert_close(both[len(train)], store[0])
    # One clip fewer in the unlabeled store is other data, so another digest.
    index = root / UNLABELED / "index.csv"
    index.write_text("".join(index.read_text().splitlines(keepends=True)[:-1]))
    fewer, fewer_digest = pretraining_clips(root, ["train", UNLABELED])
    assert len(fewer) == len(both) - 1 and fewer_digest not in (digest, with_unlabeled)
    # Only the unlabeled store, when the labeled one has no clip of the splits asked for.
    alone, _ = pretraining_clips(root, ["nothing", UNLABELED])
    assert len(alone) == len(store) - 1


def test_audio_hours_sums_the_selected_clips_durations(baseline, tmp_path):
    out, _ = baseline
    root = tmp_path / "store"
    shutil.copytree(out, root)
    shutil.copytree(out, root / UNLABELED)
    store = FeatureStore(root)
    seconds = {c: float(r["duration_s"]) for c, r in zip(store.clip_ids, store.rows)}
    train = sum(seconds[c] for c, s in zip(store.clip_ids, store.splits) if s == "train")
    assert audio_hours(pretraining_clips(root, ["train"])[0]) == pytest.approx(train / 3600)
    both = pretraining_clips(root, ["train", UNLABELED])[0]
    assert audio_hours(both) == pytest.approx((train + sum(seconds.values())) / 3600)


def test_clip_recordings_follow_the_table_and_default_to_the_clip_s_own_file(baseline, tmp_path):
    out, _ = baseline
    root = tmp_path / "store"
    shutil.copytree(out, root)
    shutil.copytree(out, root / UNLABELED)
    clips = pretraining_clips(root, ["train", UNLABELED])[0]
    store = FeatureStore(root)
    train_paths = [r["path"] for r, s in zip(store.rows, store.splits) if s == "train"]
    paths = train_paths + [r["path"] for r in store.rows]
    # The two train files come from one recording; the rest are listed nowhere.
    got = clip_recordings(clips, {train_paths[0]: "song", train_paths[1]: "song"})
    assert got == ["song", "song"] + ["song" if p in train_paths else p for p in paths[2:]]
    assert clip_recordings(clips, {}) == paths
    with pytest.raises(ValueError, match="relative to"):
        clip_recordings(clips, {str(tmp_path / "elsewhere.wav"): "song"})


def test_clip_recordings_resolve_relative_index_paths_against_root(tmp_path):
    audio = tmp_path / "repo" / "data" / "raw"
    audio.mkdir(parents=True)
    sources = []
    for name in ("a", "b", "c"):
        sf.write(audio / f"{name}.wav", np.sin(np.arange(CFG.sample_rate) / 10.0).astype(np.float32), CFG.sample_rate)
        sources.append(ClipSource(name, f"data/raw/{name}.wav", "set", "train", root=str(tmp_path / "repo")))
    repo = tmp_path / "repo"
    featurize_to_shards(sources, repo / "features", CFG, clips_per_shard=2, batch_size=2)
    store = FeatureStore(repo / "features")
    assert [r["path"] for r in store.rows] == [s.path for s in sources]  # stored relative, opened under root
    # The same clips under another root (a moved checkout) make the same store, byte for byte.
    moved = tmp_path / "moved"
    shutil.copytree(repo / "data", moved / "data")
    featurize_to_shards([dataclasses.replace(s, root=str(moved)) for s in sources], moved / "features", CFG,
                        clips_per_shard=2, batch_size=2)
    assert _tree(moved / "features") == _tree(repo / "features")
    table = {str((audio / "a.wav").resolve()): "song", str((audio / "b.wav").resolve()): "song"}
    assert clip_recordings(store, table, root=repo) == ["song", "song", "data/raw/c.wav"]
    with pytest.raises(ValueError, match="relative to"):
        clip_recordings(store, table, root=tmp_path)


def test_recompressed_clips_equal_featurizing_with_the_coarser_compression(corpus, baseline, tmp_path):
    out, _ = baseline
    coarse = tmp_path / "coarse"
    featurize_to_shards(corpus, coarse, dataclasses.replace(CFG, time_compression=3 * CFG.time_compression),
                        clips_per_shard=CLIPS_PER_SHARD, batch_size=2, min_seconds=MIN_SECONDS)
    want, got = FeatureStore(coarse), Recompressed(FeatureStore(out), 3)
    assert len(got) == len(want) == len(GOOD)
    for i in range(len(want)):
        assert got[i].shape == want[i].shape and got[i].dtype == torch.float32
        # Both sides went through float16 once; log-magnitudes of these tones are within [-14, 3]. The
        # last frame differs: a partial block of the stored compression counts as a whole frame here.
        torch.testing.assert_close(got[i][:, :-1], want[i][:, :-1], atol=0.02, rtol=0.0)
    torch.testing.assert_close(Recompressed(FeatureStore(out), 1)[2], FeatureStore(out)[2])
    assert [c.shape for c in got[1:3]] == [got[1].shape, got[2].shape]  # slices give lists, as the store's
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="factor"):
            Recompressed(FeatureStore(out), bad)


def test_cqt_batch_equals_the_per_clip_cqt():
    cqt = CQT(time_compression=3)
    rng = np.random.default_rng(0)
    # Lengths with and without a partial compression block, one shorter than a block.
    waves = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (22050, 5000, 700, 31337)]
    batched = cqt_batch(cqt, waves)
    for wave, got in zip(waves, batched):
        with torch.no_grad():
            expected = cqt(torch.from_numpy(wave))[0]
        assert got.shape == expected.shape == (84, num_frames(wave.shape[0], cqt.config))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_two_workers_give_identical_shards_and_index(corpus, baseline, tmp_path):
    out, _ = baseline
    summary = _run(corpus, tmp_path, workers=2)
    got, expected = _tree(tmp_path), _tree(out)
    assert got.keys() == expected.keys()
    for name, data in expected.items():
        assert got[name] == data, name
    assert summary["clips"] == len(GOOD) and summary["rejected"] == len(BAD)


def test_an_interrupted_run_resumes_from_its_finished_shards(corpus, baseline, tmp_path):
    out, _ = baseline

    class Stop(Exception):
        pass

    def stop_after_first(progress):
        raise Stop

    with pytest.raises(Stop):  # with live worker processes, which must be shut down cleanly
        _run(corpus, tmp_path, workers=2, on_progress=stop_after_first)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "shard-00000.index.csv", "shard-00000.npy", "shard-00000.rejects.csv"
    ]
    assert not (tmp_path / "index.csv").exists()
    first = _mtimes(tmp_path, 0)
    time.sleep(0.01)

    seen = []
    summary = _run(corpus, tmp_path, on_progress=seen.append)
    n_shards = math.ceil(len(corpus) / CLIPS_PER_SHARD)
    assert [p.shard for p in seen] == list(range(1, n_shards))
    assert [p.shards_done for p in seen] == list(range(2, n_shards + 1))
    assert summary["shards_resumed"] == 1 and summary["shards"] == n_shards
    assert _mtimes(tmp_path, 0) == first
    expected = _tree(out)
    assert _tree(tmp_path) == expected  # summary.json too: it holds no timings

    # A shard whose index part is missing (killed between its data and its index) is redone alone.
    last = n_shards - 1
    (tmp_path / "shards" / f"shard-{last:05d}.index.csv").unlink()
    before = {k: _mtimes(tmp_path, k) for k in range(last)}
    last_data = (tmp_path / "shards" / f"shard-{last:05d}.npy").stat().st_mtime_ns
    time.sleep(0.01)
    summary = _run(corpus, tmp_path)
    assert summary["shards_resumed"] == last
    assert summary["clips_this_run"] == len(_read_csv(tmp_path / "shards" / f"shard-{last:05d}.index.csv"))
    assert {k: _mtimes(tmp_path, k) for k in range(last)} == before
    assert (tmp_path / "shards" / f"shard-{last:05d}.npy").stat().st_mtime_ns > last_data
    assert _tree(tmp_path) == expected


def test_shards_are_fixed_chunks_of_the_sorted_input(corpus, baseline):
    out, summary = baseline
    ordered = sorted(s.clip_id for s in corpus)
    assert summary["shards"] == math.ceil(len(ordered) / CLIPS_PER_SHARD)
    for k in range(summary["shards"]):
        members = [r["clip_id"] for r in _read_csv(out / "shards" / f"shard-{k:05d}.index.csv")]
        members += [r["clip_id"] for r in _read_csv(out / "shards" / f"shard-{k:05d}.rejects.csv")]
        assert sorted(members) == ordered[k * CLIPS_PER_SHARD : (k + 1) * CLIPS_PER_SHARD]
        data = np.load(out / "shards" / f"shard-{k:05d}.npy", mmap_mode="r")
        rows = _read_csv(out / "shards" / f"shard-{k:05d}.index.csv")
        assert data.dtype == np.float16 and data.shape == (sum(int(r["frames"]) for r in rows), 84)
        assert [int(r["offset"]) for r in rows] == list(np.cumsum([0] + [int(r["frames"]) for r in rows])[:-1])


def test_a_rerun_with_other_settings_is_refused(corpus, baseline):
    out, _ = baseline
    with pytest.raises(ShardPlanError, match="clips_per_shard"):
        _run(corpus, out, clips_per_shard=4)
    with pytest.raises(ShardPlanError, match="sources"):
        _run(corpus[:-1], out)


def test_shards_made_one_at_a_time_in_any_order_equal_the_single_run(corpus, baseline, tmp_path):
    out, expected = baseline
    jobs = plan_shards(corpus, CLIPS_PER_SHARD)
    ordered = sorted(corpus, key=lambda s: s.clip_id)
    assert [j.name for j in jobs] == [f"shard-{k:05d}" for k in range(expected["shards"])]
    assert [s for j in jobs for s in j.sources] == ordered
    assert [len(j.sources) for j in jobs] == [3, 3, 3, 3, 1]
    assert pickle.loads(pickle.dumps(jobs)) == jobs  # what a Dask worker receives

    pending = prepare_shards(tmp_path, jobs, CFG, clips_per_shard=CLIPS_PER_SHARD, min_seconds=MIN_SECONDS)
    assert pending == jobs and (tmp_path / "plan.json").read_bytes() == (out / "plan.json").read_bytes()
    results = [featurize_shard(j, tmp_path, CFG, batch_size=2, min_seconds=MIN_SECONDS) for j in reversed(pending)]
    for result in results:
        k = result.index
        assert not result.resumed and (result.cqt_s > 0.0) == (result.clips > 0)
        assert result.clips == len(_read_csv(out / "shards" / f"shard-{k:05d}.index.csv"))
        assert result.rejected == len(_read_csv(out / "shards" / f"shard-{k:05d}.rejects.csv"))

    # Complete shards are left alone, by featurize_shard and by a later prepare_shards.
    before = _mtimes(tmp_path, 1)
    again = featurize_shard(jobs[1], tmp_path, CFG, batch_size=2, min_seconds=MIN_SECONDS)
    assert again.resumed and (again.clips, again.rejected) == (0, 0) and _mtimes(tmp_path, 1) == before
    assert prepare_shards(tmp_path, jobs, CFG, clips_per_shard=CLIPS_PER_SHARD, min_seconds=MIN_SECONDS) == []

    summary = merge_shards(tmp_path, results)
    assert _tree(tmp_path) == _tree(out)
    timings = ("wall_s", "decode_s", "decode_wait_s", "cqt_s", "write_s")
    assert {k: v for k, v in summary.items() if k not in timings} == {
        k: v for k, v in expected.items() if k not in timings}
    assert summary["cqt_s"] == pytest.approx(sum(r.cqt_s for r in results))


def test_merge_needs_every_shard_and_prepare_needs_a_plan(corpus, tmp_path):
    jobs = plan_shards(corpus, CLIPS_PER_SHARD)
    prepare_shards(tmp_path, jobs, CFG, clips_per_shard=CLIPS_PER_SHARD, min_seconds=MIN_SECONDS)
    featurize_shard(jobs[-1], tmp_path, CFG, min_seconds=MIN_SECONDS)
    with pytest.raises(IncompleteShardsError, match="4 of the 5 shards .* shard-00000"):
        merge_shards(tmp_path)
    assert not (tmp_path / "index.csv").exists()
    for bad in (jobs[1:], jobs[:-1] + [ShardJob(4, jobs[0].sources + jobs[1].sources)], []):
        with pytest.raises(ValueError, match="plan_shards"):
            prepare_shards(tmp_path, bad, CFG, clips_per_shard=CLIPS_PER_SHARD)
    # A stream of decoded files out of step with the shard is refused before anything is written.
    stream = iter(decode_files([s.path for s in jobs[1].sources], CFG.sample_rate))
    with pytest.raises(ValueError, match="expects"):
        featurize_shard(jobs[0], tmp_path, CFG, decoded=stream)
    assert not list((tmp_path / "shards").glob("shard-00000*"))


def test_a_failed_atomic_write_leaves_neither_file_nor_temporary(tmp_path):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with _atomic(tmp_path / "part.csv", "w") as fh:
            fh.write("half a row")
            raise Boom
    assert list(tmp_path.iterdir()) == []
    with _atomic(tmp_path / "part.csv", "w") as fh:
        fh.write("a,b\n")
    assert [p.name for p in tmp_path.iterdir()] == ["part.csv"]


def test_bad_arguments_and_duplicate_ids_are_refused(tmp_path):
    a = ClipSource("x", "a.wav")
    with pytest.raises(ValueError, match="unique"):
        featurize_to_shards([a, ClipSource("x", "b.wav")], tmp_path, CFG)
    with pytest.raises(ValueError, match="clips_per_shard"):
        featurize_to_shards([a], tmp_path, CFG, clips_per_shard=0)
    with pytest.raises(ValueError, match="no sources"):
        featurize_to_shards([], tmp_path, CFG)
    with pytest.raises(ValueError, match="label"):
        ClipSource("x", "a.wav", labels=("a|b",))


def test_in_process_decoding_runs_no_further_than_the_shard_being_built(corpus, tmp_path, monkeypatch):
    decoded = []
    real = features._decode

    def counting(job):
        decoded.append(job.path)
        return real(job)

    monkeypatch.setattr(features, "_decode", counting)
    ahead = []
    _run(corpus, tmp_path, on_progress=lambda p: ahead.append(
        len(decoded) - min(p.shards_done * CLIPS_PER_SHARD, len(corpus))))
    assert len(decoded) == len(corpus)
    assert ahead == [0] * math.ceil(len(corpus) / CLIPS_PER_SHARD)  # nothing decoded past the shard written


def _crashing_decode(job: DecodeJob):
    """For jobs named ``tag|path``: decode ``path``; tag ``crash`` kills the process instead."""
    tag, path = job.path.split("|")
    if tag == "crash":
        os._exit(1)  # a decoder crashing hard on one file
    return features._decode(DecodeJob(path, job.sample_rate, job.min_seconds))._replace(path=job.path)


def test_worker_pool_keeps_a_bounded_number_of_jobs_in_flight(corpus, monkeypatch):
    submitted = []

    class CountingPool(features.ProcessPoolExecutor):
        def submit(self, fn, job):
            submitted.append(job.path)
            return super().submit(fn, job)

    monkeypatch.setattr(features, "ProcessPoolExecutor", CountingPool)
    paths = [s.path for s in corpus if s.clip_id in GOOD] * 3
    max_in_flight = 3
    stream = decode_files(paths, 22050, workers=2, max_in_flight=max_in_flight)
    for consumed, item in enumerate(stream):
        time.sleep(0.02)  # a slow consumer: pool.map would have submitted every job by now
        assert len(submitted) <= consumed + max_in_flight
        assert item.wave is not None and item.path == paths[consumed]
    assert submitted == paths


def test_a_crashing_decoder_costs_only_its_own_file(corpus, monkeypatch):
    # Forked workers start at once with this module already imported (forkserver children would
    # import it, and torch, afresh for each of the four pools this test creates).
    monkeypatch.setattr(features, "_mp_context", lambda: multiprocessing.get_context("fork"))
    good = [s.path for s in corpus if s.clip_id in GOOD]
    tags = [str(i) for i in range(len(good))]
    tags.insert(2, "crash")
    paths = good[:2] + ["unused.wav"] + good[2:]
    # One worker, two jobs in flight: the crash strands an innocent job too, which must survive.
    results = list(decode_files([f"{t}|{p}" for t, p in zip(tags, paths)], 22050, workers=1, max_in_flight=2,
                                decode=_crashing_decode))
    assert [r.path.split("|")[1] for r in results] == paths
    assert [r.reason for r in results if r.wave is None] == ["decoder crashed (worker process died)"]
    assert results[2].wave is None


def test_sources_from_manifest_and_folder(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "song.wav", tone(440.0, seconds=0.1), 22050)
    sf.write(tmp_path / "song~1.wav", tone(440.0, seconds=0.1), 22050)  # would clash with a naive suffix
    manifest = tmp_path / "m.csv"
    write_manifest(
        [ManifestRow(str(tmp_path / "b" / "song.wav"), ("jazz",), "test"),
         ManifestRow(str(tmp_path / "a" / "song.wav"), ("rock", "pop"), "train"),
         ManifestRow(str(tmp_path / "song~1.wav"), ("pop",), "valid")],
        manifest,
    )
    sources = sources_from_manifest(read_manifest(manifest), "toy")
    assert [(s.clip_id, s.split, s.labels, s.dataset) for s in sources] == [
        ("song~3", "test", ("jazz",), "toy"),
        ("song~2", "train", ("rock", "pop"), "toy"),
        ("song~1", "valid", ("pop",), "toy"),
    ]
    folder = sources_from_folder(tmp_path, "unlabeled")
    assert [(s.clip_id, Path(s.path).relative_to(tmp_path).as_posix(), s.split, s.labels) for s in folder] == [
        ("song~2", "a/song.wav", "", ()), ("song~3", "b/song.wav", "", ()), ("song~1", "song~1.wav", "", ())
    ]


def test_featurize_files_batches_and_reports_rejects(corpus):
    cqt = CQT.from_config(CFG)
    paths = [s.path for s in corpus]
    seen = []
    feats, kept, rejected = featurize_files(paths, cqt, min_seconds=MIN_SECONDS, batch_size=2, on_file=seen.append)
    assert seen == paths and len(kept) + len(rejected) == len(paths)
    assert kept == [s.path for s in corpus if s.clip_id in GOOD]
    for path, feat in zip(kept, feats):
        with torch.no_grad():
            expected = cqt(torch.from_numpy(load_audio(path)))[0]
        # Batched and single matrix products sum in different orders: float32 roundoff, which
        # only shows in the log near the eps floor (2e-3 in the log is 0.2 % of the magnitude).
        torch.testing.assert_close(feat, expected, rtol=1e-4, atol=2e-3)


@pytest.mark.gpu
def test_cuda_features_match_cpu_features(corpus, baseline, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    out, _ = baseline
    _run(corpus, tmp_path, device="cuda")
    assert _read_csv(tmp_path / "rejects.csv") == _read_csv(out / "rejects.csv")
    cpu, gpu = FeatureStore(out), FeatureStore(tmp_path)
    assert gpu.clip_ids == cpu.clip_ids
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b, a, rtol=2e-3, atol=2e-3)
