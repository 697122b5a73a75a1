"""Does a clip's level explain the hand-crafted row's lead on music the encoder never heard?

`s3t.model.standardize` gives every clip zero mean and unit variance over its log-CQT before the
encoder sees it (the paper is silent on normalisation), so the encoder never sees how loud a clip is
or how wide its dB range is; the hand-crafted statistics are taken of the raw log-CQT and keep both.
This script measures whether that is where their lead comes from, with the pipeline's probe
protocol on the two validation tasks (the folds over the task's train + valid clips,
`bench/cv_score.py`, and the packages outside the task, `bench/transfer_score.py`):

    python bench/input_level.py score --checkpoint CK [--tree CHECKOUT]
    python bench/input_level.py pretrain seed=0        # bench/recipe_ablation.py, runs in work/input_level/
    python bench/input_level.py transfer --tree CHECKOUT --protocol logistic --group NAME CK

``score`` prints top-1 (linear / k-NN) of the hand-crafted statistics of the raw, the standardised
and the mean-centred clip, of the clip's (mean, std) alone, and of Random-Init and S3T fed either
the standardised clip (the pipeline) or the clip under one dataset-level affine map (the mean and
standard deviation of all train + valid frames of the task). ``pretrain`` and ``transfer`` run those
scripts with every clip under that dataset-level map in pre-training and embedding, so a run trained
on levels is scored on them. Not a pipeline option: it did not beat the default (README).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

import s3t.embed
import s3t.train
from s3t.checkpoint import load_checkpoint
from s3t.embed import embed_spectrograms
from s3t.handcrafted import handcrafted_embeddings
from s3t.model import clip_moments, standardize
from s3t.probe import ProbeConfig, cross_validate, group_folds
from s3t.shards import FeatureStore
from s3t.train import load_encoder

from cv_score import probe_protocol, train_valid_folds  # bench/ is this script's folder
from transfer_score import transfer_clips

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
DATASET = "soundtracks"


def folds_task() -> tuple[list[torch.Tensor], list[tuple[str, ...]], list[int]]:
    """The task's train + valid clips, their labels and folds (`bench/cv_score.py`'s)."""
    store = FeatureStore(ROOT / "data" / "features" / DATASET)
    keep, _, folds = train_valid_folds(store, DATASET, 5)
    return [store[i] for i in keep], [store.labels[i] for i in keep], folds


def task_level(clips: list[torch.Tensor]) -> tuple[float, float]:
    """Mean and standard deviation of every frame of ``clips`` (log-CQT units)."""
    total = squares = count = 0.0
    for clip in clips:
        x = clip.double()
        total, squares, count = total + float(x.sum()), squares + float(x.square().sum()), count + x.numel()
    mean = total / count
    return mean, (squares / count - mean**2) ** 0.5


@contextlib.contextmanager
def dataset_level_input(mean: float, std: float) -> Iterator[None]:
    """Within: pre-training (`s3t.train`) and embedding (`s3t.embed`) map every clip by the fixed
    ``(x - mean) / std`` instead of its own moments; the module globals are restored on exit."""

    def moments(x: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-5):
        return x.new_full((x.shape[0], 1, 1), mean), x.new_full((x.shape[0], 1, 1), std)

    saved = s3t.train.clip_moments, s3t.embed.standardize
    s3t.train.clip_moments = moments
    s3t.embed.standardize = lambda x, lengths=None, eps=1e-5: (x - mean) / std
    try:
        yield
    finally:
        s3t.train.clip_moments, s3t.embed.standardize = saved


def tasks(folds_clips: tuple[list[torch.Tensor], list[tuple[str, ...]], list[int]], tree: Path | None
          ) -> Iterator[tuple[str, list[torch.Tensor], list[tuple[str, ...]], list[int]]]:
    """(name, clips, labels, folds) of the folds task and, with ``tree``, of the unheard packages."""
    yield ("folds (task train + valid, by track)", *folds_clips)
    if tree is not None:
        keep, packages, tracks, _, unlabeled = transfer_clips(tree.resolve(), [])
        yield ("packages outside the task (unheard)", [unlabeled[i] for i in keep], [(p,) for p in packages],
               group_folds(tracks, packages, 5))


def score(checkpoint: Path, tree: Path | None) -> None:
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["probe"]
    options = probe_protocol(section, "logistic")
    seed = int(load_checkpoint(checkpoint)["config"]["pretrain"]["seed"])
    config = ProbeConfig(epochs=section["epochs"], batch_size=section["batch_size"][DATASET],
                         warmup_epochs=section["warmup_epochs"], seed=seed)
    encoders = {"Random-Init": load_encoder(checkpoint, random_init=True, seed=seed), "S3T": load_encoder(checkpoint)}
    folds_clips = folds_task()
    mean, std = task_level(folds_clips[0])
    print(f"probe protocol: logistic; dataset-level map: (x - {mean:.3f}) / {std:.3f}; load {os.getloadavg()[0]:.1f}")
    for name, clips, labels, folds in tasks(folds_clips, tree):
        label_set = sorted({y for row in labels for y in row})
        print(f"\n{name}: {len(clips)} clips, {len(label_set)} classes\n\n| input | top-1 linear / k-NN |\n|---|---|")
        for row, x in task_rows(encoders, clips, mean, std).items():
            result = cross_validate(x, labels, folds, label_set, config=config, **options)
            print(f"| {row} | {100 * result['top1']:.1f} / {100 * result['knn_top1']:.1f} |", flush=True)


def task_rows(encoders: dict[str, torch.nn.Module], clips: list[torch.Tensor], mean: float, std: float
              ) -> dict[str, torch.Tensor]:
    """{row name: (N, D) embeddings of ``clips``} for :func:`score`; ``encoders``: Random-Init and S3T."""
    raw = [c.float() for c in clips]
    moments = [clip_moments(c[None]) for c in raw]
    rows = {
        "hand-crafted (raw log-CQT, the pipeline's row)": handcrafted_embeddings(raw),
        "hand-crafted of the standardised clip": handcrafted_embeddings([standardize(c[None])[0] for c in raw]),
        "hand-crafted of the mean-centred clip": handcrafted_embeddings([c - m[0] for c, (m, _) in zip(raw, moments)]),
        "clip mean and std alone (2-d)": torch.tensor([[float(m), float(s)] for m, s in moments]),
    }
    for level in (False, True):
        with dataset_level_input(mean, std) if level else contextlib.nullcontext():
            for name, encoder in encoders.items():
                how = "dataset-level map" + (" (not trained on it)" if name == "S3T" else "") if level else \
                    "standardised clip (the pipeline)"
                rows[f"{name}, {how}"] = embed_spectrograms(encoder, clips)
    return rows


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("score", "pretrain", "transfer"):
        raise SystemExit("usage: input_level.py score|pretrain|transfer ... (see the module docstring)")
    torch.set_num_threads(os.cpu_count() or 1)
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "score":
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--checkpoint", type=Path, required=True)
        parser.add_argument("--tree", type=Path, help="a checkout with soundtracks.pretraining_packages: true data")
        args = parser.parse_args(rest)
        score(args.checkpoint, args.tree)
        return
    if command == "pretrain" and "--work" not in rest:
        # Its own folder: the run key of recipe_ablation.py does not know about the map.
        rest += ["--work", str(ROOT / "work" / "input_level")]
    script = BENCH / ("recipe_ablation.py" if command == "pretrain" else "transfer_score.py")
    mean, std = task_level(folds_task()[0])
    print(f"{script.name} with every clip mapped by (x - {mean:.3f}) / {std:.3f}", flush=True)
    sys.argv = [str(script), *rest]
    with dataset_level_input(mean, std):
        runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
