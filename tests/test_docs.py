"""README's results and docs/research.md are generated from the committed metrics and study exports,
never typed: regenerating them changes nothing, and a sample of their figures is checked against the
metrics files directly."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from s3t.bootstrap import format_interval

ROOT = Path(__file__).resolve().parent.parent


def _block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("<!-- BEGIN generated results -->", 1)[1].split("<!-- END generated results -->", 1)[0]


def test_generated_docs_are_what_the_metrics_and_study_exports_give():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_sample_of_readme_figures_equals_the_metrics_files():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    block = _block()
    rows = {line.split(" | ")[0].strip("| "): line for line in block.splitlines() if line.startswith("| ")}
    checked = 0
    for dataset in params["eval_datasets"]:
        top = max(params["probe"]["fractions"])
        metrics = json.loads((ROOT / "metrics" / dataset / f"probe_{top}.json").read_text())
        s3t = metrics["s3t"]
        assert format_interval(s3t["top1"], s3t["top1_low"], s3t["top1_high"]) in rows[f"S3T {top}%"]
        diff = metrics["s3t_minus_random_init"]
        assert format_interval(diff["top1"], diff["top1_low"], diff["top1_high"], signed=True) in rows[
            f"S3T minus Random-Init {top}%"]
        checked += 2
    for dataset in params["cv_datasets"] + params["transfer_datasets"]:
        cv = json.loads((ROOT / "metrics" / dataset / "cv.json").read_text())
        for key in ("handcrafted", "s3t_minus_handcrafted"):
            cell = format_interval(cv[key]["top1"], cv[key]["top1_low"], cv[key]["top1_high"], signed="minus" in key)
            assert cell in block
            checked += 1
    assert checked >= 4


def test_the_readme_python_example_runs(tmp_path):
    # Run as written, with a tiny freshly pre-trained checkpoint in place of models/pretrained.pt (a pipeline output).
    import re

    import numpy as np
    import soundfile as sf

    from s3t.cli import main

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- python example[^>]*-->\n```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "audio").mkdir()
    t = np.arange(22050 * 2) / 22050
    for i in range(8):
        sf.write(tmp_path / "audio" / f"{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t)).astype(np.float32), 22050)
    checkpoint = tmp_path / "model.pt"
    main(["pretrain", "--audio", str(tmp_path / "audio"), "--out", str(checkpoint), "--backbone", "tiny_test",
          "--preprocessor", "frequency_tiling", "--epochs", "1", "--batch-size", "4", "--K", "4"])
    assert 'checkpoint = "models/pretrained.pt"' in code
    # tests/conftest.py registers the tiny backbone the checkpoint names.
    prelude = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.conftest import TinyConv; "
               f"from s3t.backbones import register_backbone; register_backbone('tiny_test')(TinyConv)\n")
    done = subprocess.run([sys.executable, "-c", prelude + code.replace("models/pretrained.pt", str(checkpoint))],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sims = np.array([[float(v) for v in line.strip(" []").split()] for line in done.stdout.strip().splitlines()])
    assert sims.shape == (3, 3) and np.allclose(np.diag(sims), 1.0, atol=0.01)
