"""End to end through the `s3t` command line on real audio files (tiny backbone, CPU)."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from s3t.cli import main
from s3t.manifest import ManifestRow, write_manifest

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
    ckpt = root / "model.pt"
    main(["pretrain", "--audio", str(root / "audio"), "--out", str(ckpt), "--backbone", "tiny_test",
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
    broken = root / "audio" / "low" / "broken.wav"
    broken.write_bytes(b"")
    rows = [ManifestRow(str(broken), ("low",), "train")]
    write_manifest(rows, tmp_path / "bad.csv")
    main(["embed", "--checkpoint", str(ckpt), "--manifest", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "e.pt")])
    assert "broken.wav" in capsys.readouterr().err
    broken.unlink()


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
