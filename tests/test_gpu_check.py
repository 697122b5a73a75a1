"""bench/gpu_check.sh --dry-run: every step of the GPU check runs here on CPU with tiny shapes and
writes its figures, so the one device call it is written for is not spent on a broken script."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ("machine.txt", "gpu_tests.txt", "pretrain.txt", "featurize.txt", "results.json", "results.txt", "steps.txt")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    # The script runs `python3`; point it at this interpreter (the venv), whatever PATH holds.
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out), "--dry-run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    return out, proc


def test_every_step_succeeds_and_writes_its_file(dry_run):
    out, proc = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # Flat, few, plainly named: what the device tool brings back.
    names = [p.name for p in out.iterdir()]
    assert len(names) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", n) and (out / n).is_file() for n in names)
    steps = (out / "steps.txt").read_text()
    assert "FAILED" not in steps and re.search(r"^ok +results", steps, re.M)


def test_pretrain_reports_a_positive_rate_and_the_batch_search(dry_run):
    text = (dry_run[0] / "pretrain.txt").read_text()
    rate = re.search(r"^S3T step\s+([0-9.]+) samples/s", text, re.M)
    assert rate and float(rate.group(1)) > 0
    assert re.search(r"^largest batch 8 that ran: [0-9.]+ samples/s", text, re.M)


def test_gpu_tests_lists_the_cuda_marked_tests(dry_run):
    text = (dry_run[0] / "gpu_tests.txt").read_text()
    assert "tests/test_cqt.py::test_cuda_matches_cpu" in text
    assert re.search(r"\d+/\d+ tests collected", text)


def test_featurize_reports_audio_seconds_per_second(dry_run):
    text = (dry_run[0] / "featurize.txt").read_text()
    row = re.search(r"^\s+0\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)", text, re.M)
    assert row and float(row.group(1)) > 0


def test_results_have_three_rows_of_fractions_and_the_run_settings(dry_run):
    results = json.loads((dry_run[0] / "results.json").read_text())
    assert set(results["rows"]) == {"s3t", "random_init", "handcrafted"}
    for row in results["rows"].values():
        assert row["metric"] == "top1"
        for key in ("valid", "test", "knn_valid", "knn_test"):
            assert 0.0 <= row[key] <= 1.0, (key, row)
        assert row["n_train"] > 0 and row["n_valid"] > 0 and row["n_test"] > 0
    pre = results["pretrain"]
    # The dry run times two epochs, then fits what it can of its 3 s (at least one epoch).
    assert pre["timing_epochs"] == 2 and pre["epoch_s"] > 0
    assert 1 <= pre["epochs_done"] <= pre["config"]["epochs"]
    assert pre["stopped_early"] == (pre["epochs_done"] < pre["config"]["epochs"])
    assert pre["samples_seen"] == pre["steps"] * pre["config"]["batch_size"] > 0
    assert pre["config"]["K"] % pre["config"]["batch_size"] == 0
    assert math.isfinite(pre["final_loss"]) and pre["samples_per_s"] > 0
    assert results["probe"]["grid"] and results["pack"]["factor"] == 4


def test_failed_steps_are_recorded_and_the_run_goes_on(tmp_path):
    # An interpreter that fails at once: every Python step fails, none stops the run.
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), str(tmp_path), "--dry-run"],
        cwd=ROOT, env={**os.environ, "PYTHON": "false"}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    steps = (tmp_path / "steps.txt").read_text()
    for name in ("versions", "gpu tests", "pretrain, no compile", "featurize", "results"):
        assert re.search(rf"^FAILED  {re.escape(name)}.*: exit status 1$", steps, re.M), name
    assert "FAILED  results" in (tmp_path / "results.txt").read_text()
