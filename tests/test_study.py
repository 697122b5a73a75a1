"""s3t.study on what a real `dvc exp show --json` prints: a DVC repo in a temporary directory whose
stage writes a metrics file like the pipeline's cv.json, and two experiments of a study."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3t.study import Column, Study, StudyError, experiment_name, export, read_exp_show, study_table

STAGE = """import json, yaml
p = yaml.safe_load(open("params.yaml"))
v = 0.5 + p["pretrain"]["T"] / 10 + p["seed"] / 50
json.dump({"s3t": {"top1": v, "top1_low": v - 0.1, "top1_high": v + 0.1},
           "s3t_minus_random_init": {"top1": v - 0.5, "top1_low": v - 0.6, "top1_high": v - 0.4}}, open("cv.json", "w"))
"""


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def exp_show(tmp_path_factory) -> list:
    repo = tmp_path_factory.mktemp("study")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    (repo / "stage.py").write_text(STAGE)
    (repo / "params.yaml").write_text("seed: 0\npretrain:\n  T: 0.2\n")
    (repo / "dvc.yaml").write_text("stages:\n  cv:\n    cmd: python stage.py\n    deps: [stage.py]\n"
                                   "    params: [seed, pretrain]\n    metrics:\n      - cv.json:\n          cache: false\n")
    _dvc(repo, "repro", "-q")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=repo, check=True, env=env)
    for name, overrides in STUDY.runs():
        # No Hydra here: set every key the study varies, as Hydra's composition would.
        _dvc(repo, "exp", "run", "-q", "-n", name, "-S", "pretrain.T=0.2", *(a for o in overrides for a in ("-S", o)))
    return json.loads(_dvc(repo, "exp", "show", "--json"))


STUDY = Study.from_dict("t", {"title": "T", "seeds": [0, 1], "settings": {"default": [], "T 0.5": ["pretrain.T=0.5"]}})


def test_a_study_table_is_made_from_dvc_exp_show_alone(exp_show):
    experiments = read_exp_show(exp_show)
    assert {e.name for e in experiments} == {"t--default--seed0", "t--default--seed1", "t--T_0.5--seed0", "t--T_0.5--seed1"}
    runs = export(experiments, STUDY)
    assert [(r["setting"], r["seed"]) for r in runs] == [("default", 0), ("default", 1), ("T 0.5", 0), ("T 0.5", 1)]
    assert runs[2]["params"] == {"pretrain.T": 0.5, "seed": 0}
    columns = [Column("S3T", "cv.json", ("s3t", "top1")), Column("S3T - RI", "cv.json", ("s3t_minus_random_init", "top1"), True),
               Column("absent", "other.json", ("s3t", "top1"))]
    header, rows = study_table(json.loads(json.dumps(runs)), columns)
    assert header == ["setting", "seeds", "S3T", "S3T - RI", "absent"]
    # default: 0.52 and 0.54 -> mean 53.0, mean bounds 43 / 63 (whole percent), range over seeds.
    assert rows[0] == ["default", "0, 1", "53.0 [43, 63] (52.0 to 54.0)", "+3.0 [-7, 13] (2.0 to 4.0)", "not run"]
    assert rows[1][2] == "56.0 [46, 66] (55.0 to 57.0)"


def test_export_names_the_missing_runs_and_study_files_are_checked(exp_show):
    bigger = Study.from_dict("t", {"title": "T", "seeds": [0, 1, 2], "settings": {"default": []}})
    with pytest.raises(StudyError, match="t--default--seed2"):
        export(read_exp_show(exp_show), bigger)
    with pytest.raises(StudyError, match="needs title"):
        Study.from_dict("x", {"seeds": [0]})
    with pytest.raises(StudyError, match="sets the seed"):
        Study.from_dict("x", {"title": "x", "seeds": [0], "settings": {"a": ["seed=3"]}})
    with pytest.raises(StudyError, match="not one"):
        read_exp_show({"rev": "workspace"})
    assert experiment_name("recipe", "T 0.5", 1) == "recipe--T_0.5--seed1"
    assert STUDY.runs()[1] == ("t--default--seed1", ["seed=1"])


def test_a_value_without_an_interval_is_shown_as_the_mean_with_the_range_over_seeds():
    runs = [{"setting": "default", "seed": s, "metrics": {"probe.json": {"s3t": {"valid": {"top1": v}}}}}
            for s, v in ((0, 0.70), (1, 0.75))]
    header, rows = study_table(runs, [Column("valid: S3T", "probe.json", ("s3t", "valid", "top1"))])
    assert rows == [["default", "0, 1", "72.5 (70.0 to 75.0)"]]


def test_a_partial_export_leaves_missing_runs_out_and_the_table_shows_them_as_not_run(exp_show):
    bigger = Study.from_dict("t", {"title": "T", "seeds": [0, 1, 2], "settings": {"default": [], "T 0.9": ["pretrain.T=0.9"]}})
    runs = export(read_exp_show(exp_show), bigger, partial=True)
    assert [(r["setting"], r["seed"]) for r in runs] == [("default", 0), ("default", 1)]
    header, rows = study_table(runs, [Column("S3T", "cv.json", ("s3t", "top1"))], list(bigger.settings))
    assert rows[0][:2] == ["default", "0, 1"] and rows[1] == ["T 0.9", "none", "not run"]
