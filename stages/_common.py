"""What every stage shares: the params file, the output layout, the device, a logger."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from s3t.threads import sleep_at_barriers

# Before torch loads (s3t.threads): on a busy machine, OpenMP threads that spin while they wait
# for each other ran pre-training 10x slower. Every stage imports this module before torch.
sleep_at_barriers()

import torch  # noqa: E402
import yaml  # noqa: E402

from s3t.manifest import dataset_recordings  # noqa: E402
from s3t.probe import ProbeConfig, lr_wd_grid, protocol_options
from s3t.shards import UNLABELED  # data/raw/<dataset>/unlabeled/: pre-training-only audio beside a labeled manifest
from s3t.shards import FeatureStore, clip_recordings

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "data" / "raw"
FEATURES = ROOT / "data" / "features"
EMBEDDINGS = ROOT / "data" / "embeddings"
MODELS = ROOT / "models"
METRICS = ROOT / "metrics"
REPORTS = ROOT / "reports"
WORK = ROOT / "work"  # resumable in-progress state, outside DVC's outputs

# The labeled datasets and the one unlabeled source; `corpus` is the bundled generated corpus.
LABELED = ("corpus", "soundtracks", "gtzan", "fma_small", "mtat")
# Manifest columns that group clips (no group in two splits, no test group in pre-training; checked by validate).
GROUP_COLUMNS = {"soundtracks": "track", "transfer": "track"}
# The rows every probe metrics file holds side by side (embed/supervised write their embeddings).
METHODS = ("s3t", "random_init", "supervised", "handcrafted")


def params(*sections: str) -> dict[str, Any] | tuple[dict[str, Any], ...]:
    """The named top-level sections of params.yaml (the one the stage lists in dvc.yaml)."""
    with (ROOT / "params.yaml").open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    missing = [s for s in sections if s not in data]
    if missing:
        raise SystemExit(f"params.yaml has no section {missing}; regenerate it with `make params`")
    values = tuple(data[s] for s in sections)
    return values[0] if len(values) == 1 else values


def tracks(dataset: str, ids: list[str]) -> list[str]:
    """The track of each clip of data/features/<dataset> (the dataset folder's tables; a clip of a
    dataset without them is its own track), checked against the embeddings' clip ``ids``."""
    store = FeatureStore(FEATURES / dataset)
    if list(store.clip_ids) != list(ids):
        raise SystemExit(f"data/embeddings/{dataset} does not hold the clips of data/features/{dataset}; run `dvc repro`")
    return clip_recordings(store, dataset_recordings(RAW / dataset), root=ROOT)


def probe_protocol(section: dict, dataset: str, seed: int) -> tuple[ProbeConfig, dict]:
    """The probe's config and :func:`s3t.probe.fit_splits`'s protocol keywords from params.yaml's
    `probe` section (the paper's lr and batch size per dataset, those of `corpus` for other datasets)."""
    lr, batch_size = section["lr"], section["batch_size"]
    config = ProbeConfig(
        epochs=section["epochs"], batch_size=batch_size.get(dataset, batch_size["corpus"]), lr=lr.get(dataset, lr["corpus"]),
        weight_decay=section["weight_decay"], warmup_epochs=section["warmup_epochs"], seed=seed,
    )
    try:
        options = protocol_options(
            section["protocol"], grid=lr_wd_grid(section["grid"]["lr"], section["grid"]["weight_decay"]), l2=section["l2"])
    except ValueError as err:
        raise SystemExit(f"params.yaml probe: {err}") from None
    return config, options


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON at ``path``, atomically (a metrics file is whole or absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def write_scores(log: logging.Logger, path: Path, result: dict) -> None:
    """Log each row's top-1 and interval of an evaluation `result` (s3t.evaluation's layout), then write it."""
    for method, row in result.items():
        if isinstance(row, dict) and "top1_low" in row and "_minus_" not in method:
            log.info("%s: top1 %.4f [%.4f, %.4f]", method, row["top1"], row["top1_low"], row["top1_high"])
    write_json(path, result)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def logger(stage: str) -> logging.Logger:
    """INFO for the stage's own messages; libraries (GX, Prefect, httpx) stay at WARNING."""
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {stage}: %(message)s", stream=sys.stderr)
    log = logging.getLogger(f"s3t.stage.{stage}")
    log.setLevel(logging.INFO)
    return log
