"""End to end through the `s3t` command line on real audio files (tiny backbone, CPU)."""

import csv
import hashlib
import json
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
    from s3t.probe import DEFAULT_GRID

    root, manifest, ckpt = trained
    main(["probe", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(root / "g.json"),
          "--epochs", "10", "--batch-size", "4"])
    metrics = json.loads((root / "g.json").read_text())
    assert len(metrics["grid"]) == len(DEFAULT_GRID)
    assert metrics["valid"]["top1"] == max(row["valid"] for row in metrics["grid"])
    assert metrics["knn"]["k"] in (1, 3, 5, 10, 20) and 0 <= metrics["knn"]["test"]["top1"] <= 1
    assert "knn_top1" in capsys.readouterr().out


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
