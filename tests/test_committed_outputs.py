"""Nothing stale: every committed file under metrics/, reports/ and models/ is an output of a stage of the
current pipeline, as dvc.lock records it (results of earlier defaults live in the research record)."""

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_every_committed_result_file_is_written_by_a_stage_of_dvc_lock():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    outs = [Path(out["path"]) for stage in lock["stages"].values() for out in stage.get("outs", [])]
    tracked = subprocess.run(["git", "ls-files", "metrics", "reports", "models"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked, "no committed results found"
    stale = [f for f in tracked if not any(Path(f) == out or out in Path(f).parents for out in outs)]
    assert not stale, f"committed but written by no stage of dvc.lock: {stale}"
