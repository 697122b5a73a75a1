"""The committed params.yaml is exactly what Hydra composes from conf/, as DVC does on `dvc exp run`."""

from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

ROOT = Path(__file__).resolve().parent.parent


def _compose(tmp_path, overrides=()):
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(ROOT / "conf"), None, "config", "", list(overrides))
    return yaml.safe_load(out.read_text())


def test_committed_params_equal_the_composed_config(tmp_path):
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == _compose(tmp_path), "run `make params` and commit"


@pytest.mark.parametrize(
    "override,key,value",
    [
        ("preprocessor=frequency_tiling", ("preprocessor", "name"), "frequency_tiling"),
        ("backbone=resnet50", ("backbone", "name"), "resnet50"),
        ("backbone=cnn_bigru", ("backbone", "name"), "cnn_bigru"),
        ("scale=paper", ("backbone", "name"), "swin_t"),
        ("scale=paper", ("pretrain", "K"), 65536),
        ("scale=paper", ("cqt", "time_compression"), 100),
    ],
)
def test_groups_select_their_files(tmp_path, override, key, value):
    params = _compose(tmp_path, [override])
    assert params[key[0]][key[1]] == value


def test_paper_scale_is_the_papers_setting(tmp_path):
    p = _compose(tmp_path, ["scale=paper"])
    assert (p["pretrain"]["epochs"], p["pretrain"]["batch_size"], p["pretrain"]["devices"]) == (400, 128, 4)
    assert (p["pretrain"]["lr"], p["pretrain"]["warmup_epochs"], p["pretrain"]["m"], p["pretrain"]["T"]) == (0.0005, 20, 0.999, 0.2)
    assert p["eval_datasets"] == ["gtzan", "fma_small", "mtat"] and p["probe"]["fractions"] == [100, 10, 1]
    assert p["preprocessor"] == {"name": "time_folding", "input_size": 256}
    assert p["backbone"]["kwargs"] == {"window_size": 8, "drop_path_rate": 0.1}
    assert p["pretrain"]["head_pooling"] == "final"  # MoCo's head, where the CPU scale's sees the bands
    # Paper 2.3's four transforms with their published probabilities (the CPU scale turns two off).
    probs = ("freq_mask_p", "time_mask_p", "time_warp_p", "shift_p")
    assert tuple(p["augment"][k] for k in probs) == (0.5, 0.5, 0.4, 0.4)
    assert tuple(_compose(tmp_path, [])["augment"][k] for k in probs) == (0.0, 0.5, 0.4, 0.0)


def test_command_line_backbone_wins_over_the_paper_scale(tmp_path):
    """The README's Table 3 recipe: `-S scale=paper -S backbone=resnet50` runs ResNet50 at paper scale."""
    p = _compose(tmp_path, ["scale=paper", "backbone=resnet50", "eval_datasets=[gtzan]"])
    assert p["backbone"]["name"] == "resnet50" and p["pretrain"]["epochs"] == 400 and p["eval_datasets"] == ["gtzan"]


def test_data_group_defaults_to_the_soundtracks_and_falls_back_to_the_corpus(tmp_path):
    p = _compose(tmp_path, [])
    assert (p["datasets"], p["eval_datasets"]) == (["soundtracks", "transfer"], ["soundtracks"])
    assert (p["cv_datasets"], p["transfer_datasets"]) == (["soundtracks"], ["transfer"])
    assert (p["pretrain"]["dataset"], p["pretrain"]["splits"]) == ("soundtracks", ["unlabeled"])
    p = _compose(tmp_path, ["data=corpus"])
    assert (p["datasets"], p["pretrain"]["dataset"], p["pretrain"]["splits"]) == (["corpus"], "corpus", ["train", "valid"])
    assert (p["cv_datasets"], p["transfer_datasets"]) == (["corpus"], [])  # no music kept out of the corpus
    p = _compose(tmp_path, ["scale=paper"])  # the paper's data wins over the default group
    assert p["pretrain"]["dataset"] == "unlabeled" and "soundtracks" not in p["datasets"]
    # Every dataset a stage scores is one the pipeline downloads and featurizes.
    assert set(p["cv_datasets"]) <= set(p["eval_datasets"]) <= set(p["datasets"]) and p["transfer_datasets"] == []


def test_the_pipelines_probe_protocol_is_the_clis_default(tmp_path):
    from s3t.probe import DEFAULT_GRID, L2_GRID, lr_wd_grid

    probe = _compose(tmp_path, [])["probe"]
    assert probe["protocol"] == "logistic" and tuple(probe["l2"]) == L2_GRID
    grid = probe["grid"]
    assert lr_wd_grid(grid["lr"], grid["weight_decay"]) == DEFAULT_GRID


def test_the_10x_preset_is_the_cpu_recipe_with_ten_times_the_epochs(tmp_path):
    cpu, long = _compose(tmp_path, []), _compose(tmp_path, ["scale=cpu_10x"])
    assert long["pretrain"]["epochs"] == 10 * cpu["pretrain"]["epochs"]
    assert {k: v for k, v in long["pretrain"].items() if k not in ("epochs", "warmup_epochs")} == {
        k: v for k, v in cpu["pretrain"].items() if k not in ("epochs", "warmup_epochs")}
    assert long["backbone"] == cpu["backbone"] and long["datasets"] == cpu["datasets"]


def test_backbones_without_stage_features_embed_with_their_final_output(tmp_path):
    from s3t.backbones import build_backbone

    p = _compose(tmp_path, ["backbone=cnn_bigru"])
    assert (p["backbone"], p["embed"]["pooling"]) == ({"name": "cnn_bigru", "kwargs": {}}, "final")
    assert p["pretrain"]["head_pooling"] == "final"  # its MoCo head sees its own output too
    assert not hasattr(build_backbone("cnn_bigru"), "forward_intermediates")
    assert _compose(tmp_path, [])["embed"]["pooling"] == "bands"


@pytest.mark.parametrize("override", [[], ["backbone=swin_t"], ["backbone=resnet_cpu"], ["backbone=cnn_bigru"], ["scale=paper"]])
def test_frozen_modules_name_sub_modules_of_the_composed_backbone(tmp_path, override):
    from s3t.backbones import build_backbone

    p = _compose(tmp_path, override)
    backbone = build_backbone(p["backbone"]["name"], **p["backbone"]["kwargs"])
    for name in p["pretrain"]["frozen"]:
        backbone.get_submodule(name)  # raises AttributeError for a name the backbone does not have
    assert p["pretrain"]["frozen"] == []  # every default trains every stage (README: the folds chose it)
