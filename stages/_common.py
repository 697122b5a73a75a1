"""What every stage shares: the params file, the output layout, the device, a logger."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from s3t.shards import UNLABELED  # data/raw/<dataset>/unlabeled/: pre-training-only audio beside a labeled manifest

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
GROUP_COLUMNS = {"soundtracks": "track"}
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


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def logger(stage: str) -> logging.Logger:
    """INFO for the stage's own messages; libraries (GX, Prefect, httpx) stay at WARNING."""
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {stage}: %(message)s", stream=sys.stderr)
    log = logging.getLogger(f"s3t.stage.{stage}")
    log.setLevel(logging.INFO)
    return log
