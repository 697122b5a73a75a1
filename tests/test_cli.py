"""End to end through the `s3t` command line on real audio files (tiny backbone, CPU)."""

import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from s3t.checkpoint import KIND_ENCODER, KIND_PROBE, load_checkpoint, save_checkpoint
from s3t.cli import main
from s3t.embed import load_embeddings
from s3t.manifest import ManifestRow, write_manifest
from s3t.probe import LinearProbe

SR = 22050


def _write_two_class_corpus(root, per_class=12):
    """'low': harmonic tones at 55-110 Hz; 'high': tones at 1.5-3 kHz. 1.5 s each, 16-bit wav."""
    rng = np.random.default_rng(0)
    rows = []
    t = np.arange(int(1.5 * SR)) / SR
    for label, (lo, hi) in {"low": (55, 110), "high": (1500, 3000)}.items():
        for i in range(per_class):
            f0 = rng.uniform(lo, hi)
            y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3)) * 0.3 + 0.01 * rng.standard_normal(t.size)
            path = root / "audio" / label / f"{label}{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
            split = "train" if i < 6 else "valid" if i < 9 else "test"
            rows.append(ManifestRow(str(path), (label,), split))
    write_manifest(rows, root / "manifest.csv")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    manifest = _write_two_class_corpus(root)
    # What a careless corpus holds besides music: a cut file, a symlink loop, a folder named like audio.
    junk = root / "junk"
    junk.mkdir()
    (junk / "folder.wav").mkdir()
    (junk / "loop.wav").symlink_to("loop.wav")
    whole = (root / "audio" / "low" / "low00.wav").read_bytes()
    (junk / "cut.wav").write_bytes(whole[: len(whole) // 2])
    ckpt = root / "model.pt"
    main(["pretrain", "--audio", str(root / "audio"), "--audio", str(junk), "--out", str(ckpt), "--backbone", "tiny_test",
          "--preprocessor", "frequency_tiling", "--epochs", "2", "--batch-size", "8", "--K", "16",
          "--warmup-epochs", "1"])
    return root, manifest, ckpt


def test_probe_on_two_clearly_different_signal_classes_is_accurate_and_leaves_encoder_unchanged(trained, capsys):
    root, manifest, ckpt = trained
    before = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(root / "m.json"),
          "--save-probe", str(root / "probe.pt"), "--epochs", "30", "--batch-size", "4", "--lr", "0.05",
          "--protocol", "paper"])
    metrics = json.loads((root / "m.json").read_text())
    assert metrics["top1"] >= 0.95 and metrics["n_train"] == 12 and metrics["n_test"] == 6
    assert "top1" in capsys.readouterr().out
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before

    main(["predict", "--checkpoint", str(ckpt), "--probe", str(root / "probe.pt"), "--top", "2",
          str(root / "audio" / "low" / "low11.wav"), str(root / "audio" / "high" / "high11.wav")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split(": ")[1].startswith("low ") and lines[1].split(": ")[1].startswith("high ")


def test_embed_then_probe_from_embeddings_with_label_fraction_and_random_init(trained):
    root, manifest, ckpt = trained
    main(["embed", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(root / "e.pt"), "--random-init"])
    main(["probe", "--embeddings", str(root / "e.pt"), "--out", str(root / "r.json"), "--fraction", "0.5", "--epochs", "5"])
    metrics = json.loads((root / "r.json").read_text())
    assert metrics["method"] == "random_init" and metrics["n_train"] == 6 and metrics["fraction"] == 0.5


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--checkpoint", str(tmp_path / "none.pt"), "--manifest", str(tmp_path / "none.csv"), "--out", "x.json"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s3t: error:") and "does not exist" in err[0]


def test_bad_audio_in_manifest_is_reported_not_dropped(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"")
    rows = [ManifestRow(str(broken), ("low",), "train"), ManifestRow(str(root / "audio/low/low00.wav"), ("low",), "test")]
    write_manifest(rows, tmp_path / "bad.csv")
    main(["embed", "--checkpoint", str(ckpt), "--manifest", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "e.pt")])
    assert "broken.wav: zero bytes" in capsys.readouterr().err
    embeddings, rejected = load_embeddings(tmp_path / "e.pt")
    assert embeddings.embeddings.shape[0] == 1 and rejected == [[str(broken), "zero bytes"]]


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "s3t.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("pretrain", "embed", "probe", "predict", "corpus"):
        assert command in out


def test_group_column_refuses_a_leaking_manifest_with_one_line(tmp_path, capsys):
    manifest = tmp_path / "leak.csv"
    manifest.write_text(
        "path,label,split,track\na0.wav,rock,train,song_a\na1.wav,rock,test,song_a\nb0.wav,pop,valid,song_b\n"
    )
    args = ["embed", "--checkpoint", str(tmp_path / "none.pt"), "--manifest", str(manifest),
            "--out", str(tmp_path / "e.pt")]
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--group-column", "track"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s3t: error:")
    assert "group 'song_a' is in train and test" in err[0] and "put each group in one split" in err[0]
    # without the flag the manifest itself is fine; the run gets as far as the missing checkpoint
    with pytest.raises(SystemExit):
        main(args)
    err = capsys.readouterr().err
    assert "song_a" not in err and "none.pt" in err
    # embeddings carry no groups: asking for the check there is an error, not a silent pass
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--embeddings", str(tmp_path / "e.pt"), "--group-column", "track",
              "--out", str(tmp_path / "m.json")])
    assert exit_info.value.code == 2 and "use it with --checkpoint and --manifest" in capsys.readouterr().err


def test_probe_default_protocol_selects_on_valid_and_reports_knn(trained, capsys):
    from s3t.probe import DEFAULT_GRID, L2_GRID

    root, manifest, ckpt = trained
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(root / "g.json")])
    metrics = json.loads((root / "g.json").read_text())
    assert [row["l2"] for row in metrics["grid"]] == list(L2_GRID)
    assert metrics["valid"]["top1"] == max(row["valid"] for row in metrics["grid"])
    assert metrics["selection"]["l2"] in L2_GRID
    assert metrics["knn"]["k"] in (1, 3, 5, 10, 20) and 0 <= metrics["knn"]["test"]["top1"] <= 1
    assert "knn_top1" in capsys.readouterr().out
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(root / "h.json"),
          "--protocol", "grid", "--epochs", "10", "--batch-size", "4"])
    grid = json.loads((root / "h.json").read_text())
    assert [(row["lr"], row["weight_decay"]) for row in grid["grid"]] == list(DEFAULT_GRID)


def _write_mixed_folder(root):
    """Four 1.5 s clips as wav, flac, ogg (Vorbis) and mp3, one in a sub-folder, and a broken mp3."""
    folder = root / "mixed"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    t = np.arange(int(1.5 * SR)) / SR
    for i, (name, kwargs) in enumerate([("a.wav", {}), ("sub/b.flac", {}), ("c.ogg", {"format": "OGG", "subtype": "VORBIS"}),
                                        ("d.mp3", {"format": "MP3"})]):
        y = 0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / name, y.astype(np.float32), SR, **kwargs)
    (folder / "broken.mp3").write_bytes(b"ID3\x03\x00not an mp3 at all" * 8)
    return folder


def test_embed_a_folder_of_mixed_files_to_npy_and_parquet_and_rerun_skips_finished_files(trained, tmp_path, capsys, monkeypatch):
    import pandas as pd

    import s3t.cli

    _, _, ckpt = trained
    folder = _write_mixed_folder(tmp_path)
    out = tmp_path / "emb.npy"
    # Interrupt the first run after its first part of 2 files (a.wav, broken.mp3): the re-run must not redo a.wav.
    monkeypatch.setattr(s3t.cli, "FILES_PER_PART", 2)
    real, calls = s3t.cli.featurize_files, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(s3t.cli, "featurize_files", interrupted)
    with pytest.raises(SystemExit) as exit_info:  # Ctrl-C: one line, exit 130, the finished part kept
        main(["embed", "--checkpoint", str(ckpt), "--audio", str(folder), "--out", str(out)])
    assert exit_info.value.code == 130
    assert not out.exists() and len(list((tmp_path / "emb.npy.parts").glob("*.npz"))) == 1
    monkeypatch.setattr(s3t.cli, "featurize_files", real)
    capsys.readouterr()
    main(["embed", "--checkpoint", str(ckpt), "--audio", str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert "5 audio files under" in err and "1 already embedded" in err and "4 to embed" in err  # a.wav; broken.mp3 again
    matrix, index = np.load(out), pd.read_csv(tmp_path / "emb.csv")
    assert matrix.shape == (4, 8) and matrix.dtype == np.float32 and np.isfinite(matrix).all()
    assert [p.split("mixed/")[1] for p in index["path"]] == ["a.wav", "c.ogg", "d.mp3", "sub/b.flac"]
    assert (index["start_s"] == 0).all() and np.allclose(index["end_s"], 1.5, atol=0.03)
    rejected = pd.read_csv(tmp_path / "emb.npy.rejected.csv")
    assert rejected["path"].str.endswith("broken.mp3").tolist() == [True] and "decodable" in rejected["reason"][0]
    assert not (tmp_path / "emb.npy.parts").exists()

    before = matrix.copy()
    main(["embed", "--checkpoint", str(ckpt), "--audio", str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert "4 already embedded" in err and "1 to embed" in err  # only the broken file is tried again
    assert np.array_equal(np.load(out), before)

    main(["embed", "--checkpoint", str(ckpt), "--audio", str(folder), "--out", str(tmp_path / "win.parquet"),
          "--window", "0.5", "--hop", "0.25"])
    frame = pd.read_parquet(tmp_path / "win.parquet")
    per_file = frame.groupby("path").size()
    assert len(per_file) == 4 and (per_file == 5).all()  # 0-0.5, 0.25-0.75, ..., 1.0-1.5
    assert np.stack(frame["embedding"].to_numpy()).shape == (20, 8)
    first = frame[frame["path"] == frame["path"][0]]
    assert np.allclose(first["start_s"], [0, 0.25, 0.5, 0.75, 1.0], atol=0.03)

    with pytest.raises(SystemExit) as exit_info:  # another window into the same table is refused, not mixed in
        main(["embed", "--checkpoint", str(ckpt), "--audio", str(folder), "--out", str(tmp_path / "win.parquet"),
              "--window", "1.0"])
    assert exit_info.value.code == 2 and "other settings (hop_s, window_s)" in capsys.readouterr().err


def test_predict_reads_folders_and_writes_json_and_csv_with_top_labels_or_tags_above_the_threshold(trained, tmp_path, capsys):
    import torch

    from s3t.checkpoint import save_checkpoint
    from s3t.embed import embed_spectrograms
    from s3t.features import featurize_files
    from s3t.cqt import CQT
    from s3t.probe import LinearProbe
    from s3t.train import load_encoder

    _, _, ckpt = trained
    folder = _write_mixed_folder(tmp_path)
    encoder = load_encoder(ckpt)
    torch.manual_seed(0)
    tagger = LinearProbe(encoder.embedding_dim, ["bright", "dark", "loud"], multilabel=True)
    clips, kept, _ = featurize_files(sorted(str(p) for p in folder.rglob("*.*")), CQT.from_config(encoder.config.cqt))
    with torch.no_grad():
        expected = tagger.scores(embed_spectrograms(encoder, clips))
    tagger.threshold = float(expected.median())  # so that some tags are shown and some are not
    save_checkpoint({"probe": tagger.to_state()}, tmp_path / "tagger.pt")

    with pytest.raises(SystemExit) as exit_info:  # the broken file is reported, and makes the status 1
        main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "tagger.pt"), str(folder), "--format", "json"])
    assert exit_info.value.code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "multi-label" and doc["threshold"] == tagger.threshold
    assert [p["path"] for p in doc["predictions"]] == kept and doc["rejected"][0]["path"].endswith("broken.mp3")
    for row, scores in zip(doc["predictions"], expected.tolist()):
        shown = {label["label"] for label in row["labels"]}
        assert shown == {t for t, s in zip(tagger.labels, scores) if s >= tagger.threshold}
        assert [label["score"] for label in row["labels"]] == sorted((label["score"] for label in row["labels"]), reverse=True)

    single = LinearProbe(encoder.embedding_dim, ["a", "b", "c", "d"], multilabel=False)
    save_checkpoint({"probe": single.to_state()}, tmp_path / "single.pt")
    main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "single.pt"), str(folder / "a.wav"),
          str(folder / "sub"), "--format", "csv", "--top", "2"])
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["path"].split("mixed/")[1], r["rank"]) for r in rows] == [("a.wav", "1"), ("a.wav", "2"), ("sub/b.flac", "1"), ("sub/b.flac", "2")]
    assert float(rows[0]["score"]) >= float(rows[1]["score"])

    small = LinearProbe(3, ["a", "b"], multilabel=False)
    save_checkpoint({"probe": small.to_state()}, tmp_path / "small.pt")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "small.pt"), str(folder)])
    assert exit_info.value.code == 2 and "takes 3-dimensional embeddings" in capsys.readouterr().err


def test_info_prints_the_card_of_an_encoder_and_of_a_probe_and_refuses_other_files(trained, tmp_path, capsys):
    root, _, ckpt = trained
    main(["info", str(ckpt)])
    card = capsys.readouterr().out
    assert "s3t-encoder" in card and "| backbone | tiny_test" in card and "| epochs | 2 of 2" in card
    assert "| clips | 24 |" in card and "| hours of audio | 0.01 |" in card and "| torch |" in card  # recorded by s3t pretrain
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(root / "manifest.csv"), "--out", str(tmp_path / "m.json"),
          "--save-probe", str(tmp_path / "p.pt"), "--epochs", "6", "--protocol", "paper"])
    capsys.readouterr()
    main(["info", str(tmp_path / "p.pt")])
    card = capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "s3t-probe" in card and "| labels | 2: high, low |" in card and f"| test top1 | {metrics['top1']:.4f} |" in card
    from s3t.checkpoint import save_checkpoint

    save_checkpoint({"weights": [1, 2]}, tmp_path / "other.pt")  # a checkpoint, but of nothing s3t describes
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "other.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "none of encoder, probe or embeddings" in err[0]


def _fails(capsys, args: list[str], code: int = 2) -> str:
    """Run the CLI expecting exit ``code``, no traceback, and the reason as one line ending stderr
    (after any progress bars and skipped-file lines); return that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert [line for line in lines if " error: " in line] == lines[-1:] and lines[-1].startswith("s3t"), lines
    return lines[-1]


def test_pretrain_lists_skipped_files_with_reasons_next_to_the_checkpoint(trained):
    root, _, ckpt = trained
    skipped = ckpt.with_name("model.pt.skipped.csv")
    rows = {r["path"]: r["reason"] for r in csv.DictReader(skipped.open())}
    junk = root / "junk"
    assert rows[str(junk / "folder.wav")] == "a folder, not an audio file"
    assert rows[str(junk / "loop.wav")].startswith("symlink loop")
    assert rows[str(junk / "cut.wav")].startswith("truncated (0.75 s present of the 1.50 s")
    assert len(rows) == 3


def test_pretrain_never_replaces_a_finished_model_without_resume(trained, capsys):
    root, _, ckpt = trained
    before = ckpt.read_bytes()
    err = _fails(capsys, ["pretrain", "--audio", str(root / "audio"), "--out", str(ckpt), "--backbone", "tiny_test",
                          "--epochs", "1", "--batch-size", "8", "--K", "16", "--warmup-epochs", "0"])
    assert f"--out {ckpt} exists; pass --resume" in err
    assert ckpt.read_bytes() == before


def test_outputs_never_replace_inputs_or_other_kinds(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    before = ckpt.read_bytes()
    err = _fails(capsys, ["embed", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(ckpt)])
    assert "is also the --checkpoint input" in err
    other = tmp_path / "other_model.pt"
    other.write_bytes(before)
    err = _fails(capsys, ["embed", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(other)])
    assert "refusing to replace" in err and "(s3t-encoder)" in err
    err = _fails(capsys, ["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(other)])
    assert "is not a JSON metrics file" in err
    assert ckpt.read_bytes() == before and other.read_bytes() == before


def test_checkpoints_of_the_wrong_kind_exit_2_naming_what_was_found(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    wav = str(root / "audio" / "low" / "low00.wav")
    probe = tmp_path / "probe.pt"
    save_checkpoint({"probe": LinearProbe(8, ["high", "low"], False).to_state()}, probe, kind=KIND_PROBE)
    main(["embed", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "e.pt")])
    emb = tmp_path / "e.pt"
    err = _fails(capsys, ["predict", "--checkpoint", str(probe), "--probe", str(probe), wav])
    assert "(s3t-probe), but a pre-trained model" in err and "(s3t-encoder) is expected" in err
    err = _fails(capsys, ["predict", "--checkpoint", str(ckpt), "--probe", str(ckpt), wav])
    assert "(s3t-encoder), but a linear probe" in err
    assert "(s3t-embeddings), but" in _fails(capsys, ["predict", "--checkpoint", str(emb), "--probe", str(probe), wav])
    assert "(s3t-embeddings), but" in _fails(capsys, ["predict", "--checkpoint", str(ckpt), "--probe", str(emb), wav])
    err = _fails(capsys, ["probe", "--embeddings", str(ckpt), "--out", str(tmp_path / "m.json")])
    assert "(s3t-encoder), but embeddings" in err

    wide = tmp_path / "wide_probe.pt"
    save_checkpoint({"probe": LinearProbe(16, ["high", "low"], False).to_state()}, wide, kind=KIND_PROBE)
    err = _fails(capsys, ["predict", "--checkpoint", str(ckpt), "--probe", str(wide), wav])
    assert "takes 16-dimensional embeddings but the encoder gives 8" in err

    state = load_checkpoint(ckpt)
    state["encoder"]["conv.weight"] = state["encoder"]["conv.weight"][:, :, :3, :3].clone()
    reshaped = tmp_path / "reshaped.pt"
    save_checkpoint(state, reshaped, kind=KIND_ENCODER)
    err = _fails(capsys, ["predict", "--checkpoint", str(reshaped), "--probe", str(probe), wav])
    assert "do not fit the tiny_test architecture" in err and "conv.weight is (8, 1, 3, 3)" in err
    state["config"]["model"]["backbone"] = "no_such_net"
    unknown = tmp_path / "unknown.pt"
    save_checkpoint(state, unknown, kind=KIND_ENCODER)
    assert "cannot build" in _fails(capsys, ["predict", "--checkpoint", str(unknown), "--probe", str(probe), wav])


def test_pickle_payload_is_refused_in_one_line(trained, tmp_path, capsys):
    root, manifest, _ = trained

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "s3t-checkpoint-v1", "encoder": Payload(), "config": {}}, evil)
    err = _fails(capsys, ["embed", "--checkpoint", str(evil), "--manifest", str(manifest), "--out", str(tmp_path / "e.pt")])
    assert "pickle payload" in err and "weights_only" not in err
    assert not (tmp_path / "e.pt").exists()


def test_bad_arguments_exit_2_with_one_line(trained, capsys):
    root, _, ckpt = trained
    for top in ("-1", "0", "many"):
        err = _fails(capsys, ["predict", "--checkpoint", str(ckpt), "--probe", "p.pt", "--top", top, "x.wav"])
        assert err.startswith("s3t predict: error: argument --top: must be an integer >= 1")


def test_manifest_whose_clips_are_all_unreadable_exits_2_and_writes_nothing(trained, tmp_path, capsys):
    _, _, ckpt = trained
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio\n" * 10)
    (tmp_path / "m.csv").write_text("path,label,split\nempty.wav,a,train\ntext.wav,b,test\n")
    out = tmp_path / "e.pt"
    err = _fails(capsys, ["embed", "--checkpoint", str(ckpt), "--manifest", str(tmp_path / "m.csv"), "--out", str(out)])
    assert err.startswith(f"s3t: error: none of the 2 audio file(s) could be read ({tmp_path / 'empty.wav'}: zero bytes, ...)")
    assert err.endswith("nothing was written")
    assert not out.exists()


def test_pretrain_warms_up_the_papers_share_of_a_short_run(trained, tmp_path, capsys):
    from s3t.checkpoint import load_checkpoint

    root, _, _ = trained
    out = tmp_path / "short.pt"
    main(["pretrain", "--audio", str(root / "audio"), "--out", str(out), "--backbone", "tiny_test",
          "--preprocessor", "frequency_tiling", "--epochs", "1", "--batch-size", "8", "--K", "16"])
    assert load_checkpoint(out)["config"]["pretrain"]["warmup_epochs"] == 0  # 5 % of 1 epoch, not the paper's 20


def test_probe_with_baselines_prints_one_table_of_three_rows_with_intervals_and_differences(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    out = tmp_path / "held_out.json"
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(out), "--baselines"])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    for method in ("s3t", "random_init", "handcrafted"):
        assert result[method]["top1_low"] <= result[method]["top1"] <= result[method]["top1_high"]
        assert "top1" in result[method]["knn"]
    # Two clearly different signal classes: the hand-crafted statistics of the CQT separate them.
    assert result["handcrafted"]["top1"] == 1.0 and result["n"] == 6 and result["majority_class"] == 0.5
    diff = result["s3t_minus_handcrafted"]
    assert diff["top1"] == pytest.approx(result["s3t"]["top1"] - result["handcrafted"]["top1"])
    lines = printed.splitlines()
    assert "test split; 6 clips of 6 tracks" in lines[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert {"S3T", "Random-Init", "Hand-crafted (log-CQT stats)", "S3T minus Random-Init", "S3T minus hand-crafted"} <= set(rows)
    assert f"{100 * result['s3t']['top1']:.1f} [" in rows["S3T"]
    assert "chance: the largest class is 50.0 %" in printed

    # Cross-validation over every clip, folds by group (each file its own group without --group-column).
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "cv.json"),
          "--baselines", "--cv", "4"])
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert cv["n"] == 24 and cv["folds"] == 4 and cv["handcrafted"]["top1"] == 1.0
    assert "cross-validated over every clip" in capsys.readouterr().out

    assert "--baselines scores a checkpoint" in _fails(capsys, ["probe", "--embeddings", str(out), "--out", str(tmp_path / "x.json"),
                                                                 "--baselines"])
    assert "add --baselines" in _fails(capsys, ["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest),
                                                "--out", str(tmp_path / "y.json"), "--cv", "3"])
    assert "at least 3 folds" in _fails(capsys, ["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest),
                                                 "--out", str(tmp_path / "z.json"), "--baselines", "--cv", "2"])


# ----------------------------------------------------------------------------- reliability, round 2 (issue 32)


def _tone_folder(root, names=("a.wav", "b.wav"), seconds=1.0):
    """Short 16-bit WAV tones under ``root`` (names may hold bytes that are not UTF-8, as os.fsdecode gives them)."""
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    for i, name in enumerate(names):
        y = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)
        with open(os.path.join(os.fsencode(root), os.fsencode(name)), "wb") as fh:
            sf.write(fh, y.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return root


def _embed(ckpt, folder, out, *extra):
    return ["embed", "--checkpoint", str(ckpt), "--audio", str(folder), "--out", str(out), *extra]


def test_a_users_file_beside_the_table_is_never_replaced(trained, tmp_path, capsys):
    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music")
    songs = tmp_path / "songs.csv"
    songs.write_text("path,label,split\nx.wav,a,train\n")
    err = _fails(capsys, _embed(ckpt, folder, tmp_path / "songs.npy"))
    assert "songs.csv exists" in err and "choose another --out" in err
    assert songs.read_text() == "path,label,split\nx.wav,a,train\n" and not (tmp_path / "songs.npy").exists()
    (tmp_path / "t.npy.json").write_text("{not json")  # a broken descriptor of someone else's is not replaced either
    assert "t.npy.json exists" in _fails(capsys, _embed(ckpt, folder, tmp_path / "t.npy"))


def test_names_that_are_not_utf8_and_spreadsheet_formulas_are_embedded_and_written_safely(trained, tmp_path, capsys,
                                                                                          monkeypatch):
    import pandas as pd

    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music", names=("caf\udce9.wav", "=1+1.wav"))
    monkeypatch.chdir(folder)  # `--audio .`: the table's paths are relative, so a name is a whole cell
    folder = "."
    main(_embed(ckpt, folder, tmp_path / "e.npy"))
    index = (tmp_path / "e.csv").read_text(encoding="utf-8").splitlines()
    assert sorted(index[1:]) == ["'=1+1.wav,0.000,1.022", "caf\\xe9.wav,0.000,1.022"]
    assert np.load(tmp_path / "e.npy").shape == (2, 8)
    main(_embed(ckpt, folder, tmp_path / "e.parquet"))
    paths = pd.read_parquet(tmp_path / "e.parquet")["path"].tolist()
    assert sorted(paths) == ["=1+1.wav", "caf\\xe9.wav"]  # Parquet keeps the text; only the bytes are escaped
    capsys.readouterr()
    main(_embed(ckpt, folder, tmp_path / "e.npy"))
    assert "2 already embedded" in capsys.readouterr().err  # read back from the escaped CSV


def test_a_file_replaced_under_the_same_name_is_embedded_again(trained, tmp_path, capsys):
    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music")
    main(_embed(ckpt, folder, tmp_path / "e.npy"))
    before = np.load(tmp_path / "e.npy")
    _tone_folder(folder, names=("b.wav",), seconds=1.5)  # other audio, same name
    capsys.readouterr()
    main(_embed(ckpt, folder, tmp_path / "e.npy"))
    assert "1 already embedded" in capsys.readouterr().err
    after = np.load(tmp_path / "e.npy")
    assert np.array_equal(after[0], before[0]) and not np.array_equal(after[1], before[1])


@pytest.mark.parametrize("damage", ["row", "json", "npy"])
def test_a_damaged_or_half_published_table_is_refused_naming_its_files(trained, tmp_path, capsys, damage):
    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music")
    out = tmp_path / "e.npy"
    main(_embed(ckpt, folder, out))
    if damage == "row":
        lines = (tmp_path / "e.csv").read_text().splitlines()
        (tmp_path / "e.csv").write_text("\n".join(lines[:-1]) + "\n")
    elif damage == "json":
        (tmp_path / "e.npy.json").write_text('{"checkpoint_sha256": "x", "dim": 8')
    else:
        out.write_bytes(out.read_bytes()[:-40])
    err = _fails(capsys, _embed(ckpt, folder, out))
    # Named, with what to do: delete the table's files, or (a descriptor no longer read as one) move it away.
    assert ("delete" in err or "move it away" in err) and "e.npy" in err and ("e.csv" in err or "e.npy.json" in err)


def test_everything_rejected_exits_2_and_writes_nothing(trained, tmp_path, capsys):
    _, _, ckpt = trained
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"")
    sf.write(folder / "dc.wav", np.full(SR, 0.5, np.float32), SR)  # a constant offset: loud by its peak, no sound
    sf.write(folder / "one.wav", np.array([0.5], np.float32), SR)  # one sample: shorter than one CQT frame
    err = _fails(capsys, _embed(ckpt, folder, tmp_path / "e.npy"))
    assert "none of the 3 audio file(s)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music"]


def test_dc_only_and_one_sample_files_are_rejected_with_their_reason(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "m.json"),
          "--save-probe", str(tmp_path / "p.pt"), "--epochs", "6", "--protocol", "paper"])
    sf.write(tmp_path / "dc.wav", np.full(SR, 0.5, np.float32), SR)
    sf.write(tmp_path / "one.wav", np.array([0.5], np.float32), SR)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "p.pt"), str(tmp_path / "dc.wav"),
              str(tmp_path / "one.wav")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "dc.wav: no sound (a constant offset" in err and "one.wav: too short" in err


def test_an_unreadable_subfolder_is_reported_not_skipped_silently(trained, tmp_path, capsys, monkeypatch):
    import pandas as pd

    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music")
    _tone_folder(folder / "locked", names=("c.wav",))
    real = os.scandir

    def scandir(path="."):  # what a folder without read permission does (tests run as root, who reads anything)
        if not isinstance(path, int) and os.fsdecode(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    main(_embed(ckpt, folder, tmp_path / "e.npy"))
    assert "locked: folder cannot be read (Permission denied)" in capsys.readouterr().err
    rejected = pd.read_csv(tmp_path / "e.npy.rejected.csv")
    assert rejected["path"].str.endswith("locked").tolist() == [True]


def test_a_second_run_to_the_same_out_stops_at_once_on_the_lock(trained, tmp_path, capsys):
    from filelock import FileLock

    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music")
    (tmp_path / "e.npy.parts").mkdir()
    with FileLock(str(tmp_path / "e.npy.parts" / ".lock")):  # the first run holds it
        err = _fails(capsys, _embed(ckpt, folder, tmp_path / "e.npy"))
    assert "another s3t embed is writing --out" in err and not (tmp_path / "e.npy").exists()
    main(_embed(ckpt, folder, tmp_path / "e.npy"))  # once it is free, the run goes through
    assert np.load(tmp_path / "e.npy").shape == (2, 8)


@pytest.mark.parametrize("args, expected", [
    (["--window", "inf"], "argument --window: must be a number of seconds > 0"),
    (["--window", "nan"], "argument --window: must be a number of seconds > 0"),
    (["--window", "1", "--hop", "inf"], "argument --hop: must be a number of seconds > 0"),
    (["--window", "1", "--hop", "2"], "--hop 2 is longer than --window 1"),
    (["--segments", "100000"], "argument --segments: must be at most 64"),
    (["--device", "gpu0"], "--device 'gpu0' is not a device name"),
])
def test_bad_numbers_and_devices_end_in_one_line_before_any_work(trained, tmp_path, capsys, args, expected):
    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music")
    assert expected in _fails(capsys, _embed(ckpt, folder, tmp_path / "e.npy", *args))
    assert not (tmp_path / "e.npy.parts").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_a_cuda_device_on_a_machine_without_one_says_use_cpu(trained, tmp_path, capsys):
    _, _, ckpt = trained
    err = _fails(capsys, _embed(ckpt, _tone_folder(tmp_path / "music"), tmp_path / "e.npy", "--device", "cuda"))
    assert "no CUDA device here; use --device cpu" in err


def test_hop_longer_than_the_window_is_accepted_with_allow_gaps(trained, tmp_path):
    _, _, ckpt = trained
    folder = _tone_folder(tmp_path / "music", seconds=2.0)
    main(_embed(ckpt, folder, tmp_path / "e.npy", "--window", "0.5", "--hop", "1.0", "--allow-gaps"))
    assert np.load(tmp_path / "e.npy").shape[0] == 6  # 0-0.5, 1.0-1.5 and the tail 1.5-2.0 of each file


def test_rows_per_run_are_capped(trained, tmp_path, capsys, monkeypatch):
    import s3t.cli

    _, _, ckpt = trained
    monkeypatch.setattr(s3t.cli, "MAX_ROWS", 3)
    err = _fails(capsys, _embed(ckpt, _tone_folder(tmp_path / "music"), tmp_path / "e.npy", "--window", "0.25"))
    assert "more than 3 rows" in err and not (tmp_path / "e.npy").exists()


def test_ctrl_c_ends_with_one_line_and_exit_130(trained, tmp_path, capsys, monkeypatch):
    import s3t.cli

    _, _, ckpt = trained

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(s3t.cli, "featurize_files", interrupted)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(_embed(ckpt, _tone_folder(tmp_path / "music"), tmp_path / "e.npy"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 130 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("s3t: interrupted")


def test_info_reads_a_tables_descriptor_and_says_what_other_files_are_not(trained, tmp_path, capsys):
    _, _, ckpt = trained
    main(_embed(ckpt, _tone_folder(tmp_path / "music"), tmp_path / "e.npy"))
    for name in ("e.npy", "e.csv", "e.npy.json"):
        capsys.readouterr()
        main(["info", str(tmp_path / name)])
        card = capsys.readouterr().out
        assert "An embedding table written by `s3t embed --audio`" in card and "| rows | 2 (8-d float32)" in card
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    np.save(tmp_path / "loose.npy", np.zeros(3))
    for name, words in (("random.bin", "not a torch archive"), ("loose.npy", "not an s3t embed table")):
        err = _fails(capsys, ["info", str(tmp_path / name)])
        assert words in err and "weights_only" not in err


def test_non_finite_weights_are_refused_at_load_naming_the_tensor(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    state = load_checkpoint(ckpt)
    name = next(k for k, v in state["encoder"].items() if v.is_floating_point())
    state["encoder"][name] = torch.full_like(state["encoder"][name], float("nan"))
    save_checkpoint(state, tmp_path / "nan.pt")
    err = _fails(capsys, _embed(tmp_path / "nan.pt", _tone_folder(tmp_path / "music"), tmp_path / "e.npy"))
    assert f"tensor encoder.{name} holds NaN" in err


@pytest.mark.parametrize("edit", ["reversed", "duplicated", "integers"])
def test_a_probe_whose_labels_were_edited_is_refused(trained, tmp_path, capsys, edit):
    root, manifest, ckpt = trained
    torch.manual_seed(0)
    probe = LinearProbe(8, ["a", "b", "c"], multilabel=False)
    state = probe.to_state()
    state["labels"] = {"reversed": ["c", "b", "a"], "duplicated": ["a", "a", "c"], "integers": [0, 1, 2]}[edit]
    save_checkpoint({"probe": state, "history": [], "metrics": {}}, tmp_path / "p.pt", kind=KIND_PROBE)
    err = _fails(capsys, ["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "p.pt"),
                          str(root / "audio" / "low" / "low00.wav")])
    assert "damaged probe checkpoint" in err


def test_a_bar_in_a_single_label_manifest_needs_tagging_asked_for(trained, tmp_path, capsys):
    root, _, ckpt = trained
    clip = lambda kind, i: str(root / "audio" / kind / f"{kind}{i:02d}.wav")  # noqa: E731
    rows = [ManifestRow(clip("low", 0), ("low",), "train"), ManifestRow(clip("low", 1), ("low", "bright"), "train"),
            ManifestRow(clip("high", 0), ("high",), "train"), ManifestRow(clip("high", 1), ("high", "bright"), "train"),
            ManifestRow(clip("low", 2), ("low",), "valid"), ManifestRow(clip("high", 2), ("high", "bright"), "valid"),
            ManifestRow(clip("low", 3), ("low", "bright"), "test"), ManifestRow(clip("high", 3), ("high",), "test")]
    write_manifest(rows, tmp_path / "m.csv")
    args = ["probe", "--checkpoint", str(ckpt), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r.json"),
            "--epochs", "6", "--protocol", "paper"]
    err = _fails(capsys, args)
    assert "'low|bright' holds '|'" in err and "pass --tagging" in err
    main(args + ["--tagging"])
    assert "roc_auc" in json.loads((tmp_path / "r.json").read_text())  # scored as tagging


def test_probe_outputs_in_a_folder_that_cannot_be_written_are_refused_before_any_work(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    (tmp_path / "file").write_text("a file, not a folder")
    err = _fails(capsys, ["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "m.json"),
                          "--save-probe", str(tmp_path / "file" / "p.pt")])
    assert "--save-probe" in err and "cannot write in" in err and not (tmp_path / "m.json").exists()


def test_windows_per_file_are_capped(trained, tmp_path, capsys, monkeypatch):
    import s3t.cli

    _, _, ckpt = trained
    monkeypatch.setattr(s3t.cli, "MAX_WINDOWS_PER_FILE", 3)
    err = _fails(capsys, _embed(ckpt, _tone_folder(tmp_path / "music"), tmp_path / "e.npy", "--window", "0.25"))
    assert "would give 4 windows (at most 3 per file); use a longer --hop" in err and not (tmp_path / "e.npy").exists()



def test_predict_window_gives_one_row_per_window_and_long_files_are_the_mean_of_training_clips(trained, tmp_path, capsys):
    from s3t.checkpoint import load_checkpoint
    from s3t.train import training_clip_seconds

    root, manifest, ckpt = trained
    assert training_clip_seconds(load_checkpoint(ckpt)) == pytest.approx(1.5, abs=0.03)  # recorded by s3t pretrain
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "m.json"),
          "--save-probe", str(tmp_path / "p.pt"), "--epochs", "6", "--protocol", "paper"])
    folder = _tone_folder(tmp_path / "music", names=("song.wav",), seconds=6.0)
    capsys.readouterr()
    main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "p.pt"), "--window", "1.5", str(folder)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].split(": ")[0].endswith("song.wav [0.0-1.5 s]")
    main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "p.pt"), "--format", "csv", "--window", "3",
          str(folder)])
    assert capsys.readouterr().out.splitlines()[0] == "path,start_s,end_s,rank,label,score,novelty"
    # Without --window the 6 s file is one row: the mean of its four 1.5 s windows, not one squeezed view.
    main(_embed(ckpt, folder, tmp_path / "f.npy"))
    main(_embed(ckpt, folder, tmp_path / "w.npy", "--window", "1.5"))
    assert np.allclose(np.load(tmp_path / "f.npy")[0], np.load(tmp_path / "w.npy").mean(0), atol=1e-5)


def test_probe_reports_clips_per_split_chance_and_majority_and_warns_of_classes_missing_from_a_split(trained, tmp_path,
                                                                                                  capsys):
    root, _, ckpt = trained
    clip = lambda kind, i: str(root / "audio" / kind / f"{kind}{i:02d}.wav")  # noqa: E731
    rows = [ManifestRow(clip("low", i), ("low",), "train") for i in range(4)]
    rows += [ManifestRow(clip("high", i), ("high",), "train") for i in range(4)]
    rows += [ManifestRow(clip("low", 5), ("low",), "valid"), ManifestRow(clip("high", 5), ("high",), "valid")]
    rows += [ManifestRow(clip("low", i), ("low",), "test") for i in (6, 7, 8)]  # no "high" test clip
    write_manifest(rows, tmp_path / "m.csv")
    capsys.readouterr()
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r.json"),
          "--epochs", "6", "--protocol", "paper"])
    captured = capsys.readouterr()
    assert "s3t: warning: 1 of 2 class(es) have no test clip: high" in captured.err
    assert "clips: train 8, valid 2, test 3; chance 50.0 %, majority class low 100.0 % of test" in captured.out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["chance"] == 0.5 and result["majority"] == 1.0 and result["majority_class"] == "low"


def test_predict_gives_each_file_its_novelty_and_flags_music_unlike_the_probes(trained, tmp_path, capsys):
    root, manifest, ckpt = trained
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(tmp_path / "m.json"),
          "--save-probe", str(tmp_path / "p.pt"), "--epochs", "6", "--protocol", "paper"])
    folder = tmp_path / "music"
    folder.mkdir()
    sf.write(folder / "noise.wav", np.random.default_rng(0).uniform(-1, 1, 3 * SR).astype(np.float32), SR)
    capsys.readouterr()
    main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "p.pt"), "--format", "json",
          str(root / "audio" / "low" / "low11.wav"), str(folder / "noise.wav")])
    doc = json.loads(capsys.readouterr().out)
    tone, noise = (row["novelty"] for row in doc["predictions"])
    assert 0 <= tone < noise and noise > 1  # full-band noise is nothing like the tones the probe was trained on
    main(["predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "p.pt"), str(folder / "noise.wav")])
    assert "[unlike the probe's training music: novelty" in capsys.readouterr().out
