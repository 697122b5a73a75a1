"""s3t.recipe: `s3t pretrain --recipe` builds exactly the pipeline's model from conf/ (issue 33)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from s3t.checkpoint import load_checkpoint
from s3t.cli import main
from s3t.recipe import RecipeError, compose_params, configs_from_params, recipe_names

ROOT = Path(__file__).resolve().parents[1]


def test_the_cpu_recipe_is_the_model_and_schedule_of_params_yaml():
    # params.yaml is conf/ composed with the default scale (cpu); tests/test_config.py checks that it is.
    pipeline = configs_from_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    recipe = configs_from_params(compose_params("cpu"))
    assert recipe[0] == pipeline[0] and recipe[1] == pipeline[1]
    paper = configs_from_params(compose_params("paper"))
    assert paper[0].backbone == "swin_t" and paper[1].K == 65536 and paper[0] != pipeline[0]
    assert {"cpu", "cpu_10x", "paper"} <= set(recipe_names())


def test_an_unknown_recipe_or_a_missing_conf_says_what_to_change(tmp_path):
    with pytest.raises(RecipeError, match="not one of .*cpu.*paper"):
        compose_params("fast")
    with pytest.raises(RecipeError, match="source checkout or set S3T_CONF"):
        compose_params("cpu", tmp_path)


def _folder(root: Path, files: int, seconds: float = 2.0) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 22050)) / 22050
    for i in range(files):
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(root / f"{i:02d}.wav", y.astype(np.float32), 22050, subtype="PCM_16")
    return root


def test_pretrain_with_the_cpu_recipe_on_a_small_folder_fits_its_queue_and_writes_the_pipelines_model(tmp_path, capsys):
    folder = _folder(tmp_path / "music", 40)
    out = tmp_path / "model.pt"
    main(["pretrain", "--recipe", "cpu", "--audio", str(folder), "--out", str(out), "--epochs", "1"])
    assert "queue K lowered from 128 to 32 to stay below the folder's 40 clips" in capsys.readouterr().err
    state = load_checkpoint(out)
    pipeline_model = configs_from_params(yaml.safe_load((ROOT / "params.yaml").read_text()))[0]
    assert state["config"]["model"] == pipeline_model.to_dict() and state["config"]["pretrain"]["K"] == 32


def test_a_folder_too_small_for_one_batch_is_refused_before_featurizing(tmp_path, capsys):
    folder = _folder(tmp_path / "music", 8)
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--recipe", "cpu", "--audio", str(folder), "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "featurize" not in err
    assert "8 audio file(s) give no full batch of 32: pass --batch-size 8 or less" in err
