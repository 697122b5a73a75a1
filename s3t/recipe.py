"""The pipeline's pre-training recipes, for any folder: `ModelConfig` and `PretrainConfig` from the params that
`conf/` composes (paper Section 3.2 for the `paper` scale; `conf/scale/*.yaml` says what each other scale changes).

`dvc repro` composes `conf/` into `params.yaml` and the `pretrain` stage builds its model with
:func:`configs_from_params`; `s3t pretrain --recipe NAME` composes the same `conf/` with `scale=NAME` and builds
with the same function, so the command line trains exactly the pipeline's model at that scale (backbone, CQT,
pre-processor, embedding pooling, schedule, MoCo and augmentation settings), not a look-alike.

Composing needs hydra-core and the project's `conf/` folder (a source checkout, as `make install` gives);
building from an already composed dict (:func:`configs_from_params`) needs neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from s3t.cqt import CQTConfig
from s3t.model import ModelConfig
from s3t.train import PretrainConfig

__all__ = ["RecipeError", "compose_params", "conf_dir", "configs_from_params", "recipe_names"]


class RecipeError(ValueError):
    """A recipe that cannot be composed; the message says what to change."""


def configs_from_params(params: dict[str, Any]) -> tuple[ModelConfig, PretrainConfig, dict[str, Any]]:
    """The model and training configs of composed params (``params.yaml``'s layout), and the ``pretrain`` section
    (its data keys: ``dataset``, ``splits``, ``devices``). The embedding settings travel in the checkpoint, so
    ``s3t embed|probe|predict`` embed like the run that trained it."""
    backbone, preprocessor, embed, section = params["backbone"], params["preprocessor"], params["embed"], params["pretrain"]
    model = ModelConfig(
        backbone=backbone["name"], backbone_kwargs=dict(backbone["kwargs"]), preprocessor=preprocessor["name"],
        input_size=preprocessor["input_size"], cqt=CQTConfig(**params["cqt"]),
        embed_segments=embed["segments"], embed_pooling=embed["pooling"],
    )
    train_keys = {k: v for k, v in section.items() if k not in ("dataset", "splits", "devices")}
    return model, PretrainConfig(**train_keys, seed=params["seed"], augment=dict(params["augment"])), dict(section)


def conf_dir() -> Path:
    """The project's ``conf/`` (beside the ``s3t`` package in a source checkout), or ``$S3T_CONF``."""
    return Path(os.environ.get("S3T_CONF") or Path(__file__).resolve().parents[1] / "conf")


def recipe_names(conf: Path | None = None) -> list[str]:
    """The scales ``conf/scale/`` defines (``cpu``, ``cpu_10x``, ``paper``, ...)."""
    folder = (conf or conf_dir()) / "scale"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def compose_params(recipe: str, conf: Path | None = None) -> dict[str, Any]:
    """``conf/config.yaml`` composed with ``scale=<recipe>``, as a plain dict (what ``params.yaml`` would hold).

    Raises:
        RecipeError: no ``conf/`` here, an unknown recipe, or hydra-core missing.
    """
    conf = conf or conf_dir()
    names = recipe_names(conf)
    if not names:
        raise RecipeError(f"recipes are composed from the project's conf/ folder, not found at {conf}: run from a "
                          f"source checkout or set S3T_CONF to its conf/")
    if recipe not in names:
        raise RecipeError(f"--recipe {recipe!r} is not one of {', '.join(names)} (conf/scale/*.yaml)")
    try:
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf
    except ImportError as err:
        raise RecipeError("--recipe composes conf/ with hydra-core: pip install hydra-core") from err
    with initialize_config_dir(config_dir=str(conf.resolve()), version_base=None):
        composed = compose(config_name="config", overrides=[f"scale={recipe}"])
    return OmegaConf.to_container(composed, resolve=True)
