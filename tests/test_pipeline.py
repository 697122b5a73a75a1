"""The DVC pipeline end to end, in real DVC repos in temporary folders, on a tiny config.

One uninterrupted `dvc repro`; one killed (SIGKILL, whole process group) while pre-training
and run again, which must finish with exactly the same metrics; a second `dvc repro` that has
nothing to do; and `dvc exp run -S preprocessor=frequency_tiling` compared with
`dvc metrics diff`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

TINY = [
    "data=corpus", "corpus.genres=[rock,jazz,classical]", "corpus.clips_per_genre=6", "corpus.seconds=4.0", "corpus.workers=1",
    "featurize.workers=0", "featurize.clips_per_shard=8",
    "pretrain.epochs=3", "pretrain.batch_size=4", "pretrain.K=8", "pretrain.warmup_epochs=1",
    "supervised.epochs=1", "supervised.batch_size=4", "supervised.warmup_epochs=0",
    "probe.epochs=3", "probe.warmup_epochs=1", "probe.fractions=[100,50]", "probe.batch_size.corpus=8", "evaluation.resamples=100",
    "validate.augment_draws=1000",
]


def _env() -> dict[str, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    env.pop("DVC_ROOT", None)
    return env


def _run(args: list[str], cwd: Path, timeout: int = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _tiny_repo(tmp: Path) -> Path:
    """A copy of this project's tracked and untracked (not ignored) files as a fresh git + DVC repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("metrics/", "reports/")) and name != "dvc.lock":
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp / name)
    compose_and_dump(tmp / "params.yaml", str(tmp / "conf"), None, "config", "", TINY)
    _run(["git", "init", "-q"], tmp)
    _commit(tmp, "tiny")
    return tmp


def _commit(repo: Path, message: str) -> None:
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def _metrics(repo: Path) -> dict:
    return {p.relative_to(repo).as_posix(): json.loads(p.read_text()) for p in sorted((repo / "metrics").rglob("*.json"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    repo = _tiny_repo(tmp_path_factory.mktemp("uninterrupted"))
    _run([str(BIN / "dvc"), "repro"], repo)
    return repo


def test_pipeline_runs_and_a_second_repro_does_nothing(reference):
    metrics = _metrics(reference)
    assert set(metrics) == {"metrics/corpus/probe_100.json", "metrics/corpus/probe_50.json", "metrics/corpus/cv.json",
                            "metrics/corpus/summary_100.json", "metrics/corpus/summary_50.json",
                            "metrics/corpus/summary_cv.json"}
    # `dvc metrics show` shows the headlines only: one narrow row per result file.
    shown = _run([str(BIN / "dvc"), "metrics", "show"], reference)
    assert "summary_100.json" in shown and "probe_100.json" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 120, shown
    for name in ("metrics/corpus/probe_100.json", "metrics/corpus/probe_50.json"):
        for method in ("s3t", "random_init", "supervised", "handcrafted"):
            row = metrics[name][method]
            assert 0.0 <= row["top1_low"] <= row["top1"] <= row["top1_high"] <= 1.0 and row["n_test"] > 0
        assert {"s3t_minus_random_init", "s3t_minus_handcrafted"} <= set(metrics[name])
    cv = metrics["metrics/corpus/cv.json"]  # every train + valid clip scored once, with intervals
    assert cv["n"] == sum(metrics["metrics/corpus/probe_100.json"]["s3t"][k] for k in ("n_train", "n_valid"))
    assert cv["s3t"]["top1_low"] <= cv["s3t"]["top1"] <= cv["s3t"]["top1_high"] and "supervised" not in cv
    assert "| Method |" in (reference / "reports" / "tables.md").read_text()
    assert (reference / "models" / "pretrained.pt").is_file()
    card = (reference / "models" / "pretrained.md").read_text()
    assert "| dataset | corpus |" in card and "| epochs | 3 of 3" in card and "| torch |" in card
    assert _run([str(BIN / "s3t"), "info", "models/pretrained.pt"], reference).strip() == card.strip()
    page = (reference / "reports" / "index.html").read_text()
    assert 'id="fig-embedding-map-corpus"' in page and 'id="fig-confusion-corpus"' in page and "data-source" in page
    out = _run([str(BIN / "dvc"), "repro"], reference)
    assert "Running stage" not in out
    assert _run([str(BIN / "dvc"), "status"], reference).strip().endswith("Data and pipelines are up to date.")


def test_killed_repro_resumes_to_the_same_results(reference, tmp_path):
    repo = _tiny_repo(tmp_path)
    proc = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=repo, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((repo / "work" / "pretrain").glob("*/checkpoint.pt")):
        assert proc.poll() is None, "dvc repro ended before pre-training wrote a checkpoint"
        assert time.monotonic() < deadline, "no pre-training checkpoint within 300 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (repo / "models" / "pretrained.pt").exists()
    _run([str(BIN / "dvc"), "repro"], repo)
    assert _metrics(repo) == _metrics(reference)
    # Made in another folder, the features are the same bytes (index paths relative to the repository,
    # no timings in the store), so DVC hashes them alike and the stages after them see the same deps.
    assert _files(repo / "data" / "features") == _files(reference / "data" / "features")
    outs = [yaml.safe_load((r / "dvc.lock").read_text())["stages"]["featurize@corpus"]["outs"] for r in (repo, reference)]
    assert outs[0] == outs[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_experiment_with_frequency_tiling_shows_in_metrics_diff(reference):
    _commit(reference, "time folding results")
    # `dvc exp run` composes params.yaml from conf/ again, so the tiny overrides go with it.
    sets = [arg for o in TINY + ["preprocessor=frequency_tiling"] for arg in ("-S", o)]
    _run([str(BIN / "dvc"), "exp", "run", "-n", "tiling", *sets], reference)
    assert "frequency_tiling" in (reference / "params.yaml").read_text()
    out = _run([str(BIN / "dvc"), "metrics", "diff", "HEAD", "--all", "--json"], reference)
    diffs = json.loads(out[out.index("{"):])
    diff = diffs["metrics/corpus/summary_100.json"]
    assert {"S3T", "RI", "Sup", "HC", "ΔRI", "ΔRI lo", "ΔRI hi", "ΔHC"} <= set(diff)
    assert all(diff[k]["old"] is not None and diff[k]["new"] is not None for k in diff)
    # The cross-validated rows are in the diff too.
    assert {"S3T", "ΔHC", "ΔHC lo"} <= set(diffs["metrics/corpus/summary_cv.json"])
    # The tiny test split's headline can stay put (3 clips); the full result, named as a target, shows the change.
    out = _run([str(BIN / "dvc"), "metrics", "diff", "HEAD", "--all", "--json", "--targets", "metrics/corpus/probe_100.json"],
               reference)
    full = json.loads(out[out.index("{"):])["metrics/corpus/probe_100.json"]
    assert {"s3t.top1", "s3t.top1_low", "s3t_minus_random_init.top1"} <= set(full)
    assert any(full[k]["old"] != full[k]["new"] for k in full), "the pre-processor changed no metric"
    shown = _run([str(BIN / "dvc"), "exp", "show", "--csv"], reference)
    assert "tiling" in shown
