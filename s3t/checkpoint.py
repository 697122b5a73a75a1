"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts saved with
``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses any
other object type. Writing goes to a temporary file in the same folder, is flushed to
disk, then renamed over the target, so an interrupted write never leaves a truncated
checkpoint where a reader would accept it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "s3t-checkpoint-v1"


class CheckpointError(ValueError):
    """A file that is not an S3T checkpoint, or one written by an incompatible version."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Atomically write ``state`` (plus a format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an S3T checkpoint (expected format {FORMAT!r})")
    return state
