"""Score pre-trained checkpoints by grouped cross-validation over the train and valid clips of a
labeled store: every one of those clips is scored once, the test split is never read.

The recipe ablation (`bench/recipe_ablation.py`) scores a run on the 55 valid clips of the
soundtracks, where one clip is 1.8 points and rows within a few clips of each other cannot be told
apart. Here the 234 train + valid clips are cut into ``--folds`` folds by track (every track's clips
in one fold, each fold holding tracks of every class: per class, tracks in sha256 order dealt round
robin), and each fold is scored once by the pipeline's probe protocol trained on the other folds: the
next fold in turn selects the (lr, weight decay) of the grid and k for k-NN, the rest train. The
same protocol, on about four times as many scored clips.

    python bench/cv_score.py --group "frozen default" CK0 CK1 ... --group "recording pairs" CK2 ...
    python bench/cv_score.py --segments 2 --group "default, 2 segments" CK0 CK1 ...
    python bench/cv_score.py --encoder k --group "default, key encoder" CK0 CK1 ...

Prints, per checkpoint, top-1 in % of S3T, Random-Init (the checkpoint's architecture initialised
with its seed, as the ablation draws it) and the hand-crafted statistics, linear / k-NN, and per
group the means. Tracks come from the dataset folder's tables (`s3t.manifest.dataset_recordings`).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
import yaml

from s3t.checkpoint import load_checkpoint
from s3t.embed import embed_spectrograms
from s3t.handcrafted import handcrafted_embeddings
from s3t.manifest import dataset_recordings
from s3t.model import Encoder
from s3t.probe import PROTOCOLS, ProbeConfig, cross_validate, group_folds, lr_wd_grid, protocol_options
from s3t.shards import FeatureStore, clip_recordings
from s3t.train import load_encoder

from embedding_ablation import stage_columns  # bench/ is this script's folder

ROOT = Path(__file__).resolve().parent.parent


def train_valid_folds(store: FeatureStore, dataset: str, folds: int) -> tuple[list[int], list[str], list[int]]:
    """The store's train + valid rows, each one's track (the dataset folder's tables) and its fold
    (:func:`s3t.probe.group_folds`); `bench/recipe_ablation.py` scores its rows on the same folds."""
    keep = [i for i, split in enumerate(store.splits) if split in ("train", "valid")]
    tracks = clip_recordings(torch.utils.data.Subset(store, keep), dataset_recordings(ROOT / "data" / "raw" / dataset), root=ROOT)
    return keep, tracks, group_folds(tracks, [store.labels[i][0] for i in keep], folds)


def key_encoder(checkpoint: Path) -> torch.nn.Module:
    """The checkpoint's encoder with the backbone weights of MoCo's key encoder (``encoder_k``)."""
    encoder = load_encoder(checkpoint)
    moco = load_checkpoint(checkpoint).get("moco")
    if moco is None:
        raise SystemExit(f"{checkpoint} has no `moco` state (an exported encoder, not a training checkpoint)")
    prefix = "encoder_k.backbone."
    encoder.backbone.load_state_dict({k[len(prefix):]: v for k, v in moco.items() if k.startswith(prefix)})
    return encoder


def checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`score_checkpoints` (`--group`, `--folds`, `--segments`, `--protocol`, `--encoder`,
    `--stages`)."""
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "CHECKPOINT"),
                        help="a name, then the checkpoints of its rows (their mean is printed); repeatable")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--segments", type=int, default=None,
                        help="segments per clip for S3T and Random-Init (default: each checkpoint's setting)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=None,
                        help="the probe protocol (default: params.yaml's probe.protocol)")
    parser.add_argument("--encoder", choices=("q", "k"), default="q",
                        help="S3T's weights: MoCo's query encoder (the pipeline's, default) or its momentum-averaged "
                             "key encoder (from the training checkpoint's `moco` state)")
    parser.add_argument("--stages", default="all",
                        help="Swin stages whose blocks of S3T's and Random-Init's embedding are probed: all, or "
                             "stage numbers from 1 joined by commas, such as 2,3 (as bench/embedding_ablation.py)")


def checkpoint_groups(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, list[Path]]:
    """The checked `--group` options as {name: checkpoints}."""
    if any(len(group) < 2 for group in args.group):
        parser.error("each --group needs a name and at least one checkpoint")
    if args.segments is not None and args.segments < 1:
        parser.error(f"--segments must be at least 1, got {args.segments}")
    return {group[0]: [Path(c) for c in group[1:]] for group in args.group}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    checkpoint_arguments(parser)
    parser.add_argument("--dataset", default="soundtracks")
    args = parser.parse_args()
    groups = checkpoint_groups(parser, args)
    torch.set_num_threads(os.cpu_count() or 1)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    store = FeatureStore(ROOT / "data" / "features" / args.dataset)
    keep, tracks, folds = train_valid_folds(store, args.dataset, args.folds)
    labels = [store.labels[i] for i in keep]
    clips = [store[i] for i in keep]
    segments = args.segments or "each checkpoint's setting"
    print(f"{len(keep)} clips of {len(set(tracks))} tracks in {args.folds} folds of "
          f"{', '.join(str(folds.count(f)) for f in range(args.folds))} clips; segments per clip: {segments}; "
          f"encoder: {'key' if args.encoder == 'k' else 'query'}", flush=True)
    score_checkpoints(groups, clips, labels, folds, params["probe"], args.dataset, args.segments, args.encoder,
                      args.protocol, args.stages)


def probe_protocol(section: dict, protocol: str | None = None) -> dict:
    """:func:`s3t.probe.cross_validate`'s ``grid``/``l2`` keywords for params.yaml's `probe` section,
    with its protocol, or ``protocol`` when given."""
    return protocol_options(protocol or section["protocol"], grid=lr_wd_grid(section["grid"]["lr"], section["grid"]["weight_decay"]),
                            l2=section.get("l2") or ())


def score_checkpoints(groups: dict[str, list[Path]], clips: list[torch.Tensor], labels: list[tuple[str, ...]],
                      folds: list[int], section: dict, dataset: str, segments: int | None, encoder_kind: str,
                      protocol: str | None = None, stages: str = "all") -> None:
    """Print each checkpoint's fold top-1 (S3T, Random-Init, hand-crafted; linear / k-NN) on ``clips``
    and each group's means. ``section`` is params.yaml's `probe` (its protocol unless ``protocol``);
    its batch size is ``dataset``'s. ``stages`` keeps those Swin stages' blocks of the learned rows."""
    options = probe_protocol(section, protocol)
    print(f"probe protocol: {protocol or section['protocol']}; Swin stages: {stages}", flush=True)

    def probe_config(seed: int) -> ProbeConfig:
        return ProbeConfig(epochs=section["epochs"], batch_size=section["batch_size"][dataset],
                           warmup_epochs=section["warmup_epochs"], seed=seed)

    hand = handcrafted_embeddings(clips)
    label_set = sorted({y for row in labels for y in row})

    def score(x: torch.Tensor, seed: int) -> list[float]:
        result = cross_validate(x, labels, folds, label_set, config=probe_config(seed), **options)
        return [100 * result["top1"], 100 * result["knn_top1"]]

    def learned(encoder: Encoder, seed: int) -> list[float]:
        x = embed_spectrograms(encoder, clips, num_segments=segments)
        columns = stage_columns(encoder, stages)
        return score(x if columns is None else x[:, columns], seed)

    # Random-Init and the hand-crafted row depend only on the seed (and the architecture): scored once.
    random_init: dict[tuple[int, str], list[float]] = {}
    handcrafted: dict[int, list[float]] = {}
    print("| checkpoint | S3T | Random-Init | hand-crafted |\n|---|---|---|---|")
    for name, checkpoints in groups.items():
        scores = []
        for checkpoint in checkpoints:
            config = load_checkpoint(checkpoint)["config"]
            seed = int(config["pretrain"]["seed"])
            key = (seed, repr(config["model"]))
            if key not in random_init:
                random_init[key] = learned(load_encoder(checkpoint, random_init=True, seed=seed), seed)
            if seed not in handcrafted:
                handcrafted[seed] = score(hand, seed)
            encoder = load_encoder(checkpoint) if encoder_kind == "q" else key_encoder(checkpoint)
            row = [learned(encoder, seed), random_init[key], handcrafted[seed]]
            scores.append(row)
            cells = " | ".join(f"{lin:.1f} / {knn:.1f}" for lin, knn in row)
            print(f"| {checkpoint.parent.name} (seed {seed}) | {cells} |", flush=True)
        if len(checkpoints) > 1:
            means = " | ".join(f"{statistics.mean(r[j][0] for r in scores):.1f} / "
                               f"{statistics.mean(r[j][1] for r in scores):.1f}" for j in range(3))
            print(f"| **{name}**, mean of {len(checkpoints)} | {means} |", flush=True)

if __name__ == "__main__":
    main()
