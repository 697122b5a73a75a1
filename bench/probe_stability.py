"""How far a probe protocol's score moves when the embeddings move by rounding.

Each encoder's embeddings (S3T, its Random-Init, the hand-crafted statistics) are scored by grouped
cross-validation (`s3t.probe.cross_validate`, as `bench/cv_score.py`) once as they are and then with
every entry multiplied by (1 + 1e-6 * noise), a change of the size that another thread count or
another machine's arithmetic makes. A protocol whose score moves under that cannot rank two encoders
whose scores differ by less than the move.

    python bench/probe_stability.py --checkpoint CK [--tree CHECKOUT] [--perturbations 4] [--protocols logistic grid]

Without ``--tree`` the task is the soundtracks' train + valid clips in 5 folds by track (the recipe
ablation's folds); with it, the unheard packages of ``bench/transfer_score.py``'s eleven-package checkout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from s3t.checkpoint import load_checkpoint
from s3t.embed import embed_spectrograms
from s3t.handcrafted import handcrafted_embeddings
from s3t.probe import PROTOCOLS, ProbeConfig, cross_validate, group_folds
from s3t.shards import FeatureStore
from s3t.train import load_encoder

from cv_score import probe_protocol, train_valid_folds  # bench/ is this script's folder
from transfer_score import transfer_clips

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--tree", type=Path, help="score on the unheard packages of this eleven-package checkout")
    parser.add_argument("--perturbations", type=int, default=4, help="perturbed copies besides the embeddings as they are")
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=["logistic", "grid"])
    args = parser.parse_args()
    if args.perturbations < 1:
        parser.error(f"--perturbations must be at least 1, got {args.perturbations}")
    torch.set_num_threads(os.cpu_count() or 1)
    if args.tree:
        keep, packages, tracks, _, store = transfer_clips(args.tree.resolve(), [])
        labels, folds, batch_key = [(p,) for p in packages], group_folds(tracks, packages, 5), "soundtracks"
    else:
        store = FeatureStore(ROOT / "data" / "features" / "soundtracks")
        keep, _, folds = train_valid_folds(store, "soundtracks", 5)
        labels, batch_key = [store.labels[i] for i in keep], "soundtracks"
    clips = [store[i] for i in keep]
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["probe"]
    seed = int(load_checkpoint(args.checkpoint)["config"]["pretrain"]["seed"])
    config = ProbeConfig(epochs=section["epochs"], batch_size=section["batch_size"][batch_key],
                         warmup_epochs=section["warmup_epochs"], seed=seed)
    label_set = sorted({y for row in labels for y in row})
    embeddings = {
        "S3T": embed_spectrograms(load_encoder(args.checkpoint), clips),
        "Random-Init": embed_spectrograms(load_encoder(args.checkpoint, random_init=True, seed=seed), clips),
        "hand-crafted": handcrafted_embeddings(clips),
    }
    print(f"{len(clips)} clips in 5 folds; {args.checkpoint} (seed {seed}); "
          f"fold top-1 in %, as they are, then {args.perturbations} copies times (1 + 1e-6 noise)", flush=True)
    print("| embedding | dim | protocol | scores | range | seconds per score |\n|---|---|---|---|---|---|", flush=True)
    for name, x in embeddings.items():
        copies = [x] + [x * (1 + 1e-6 * torch.randn(x.shape, generator=torch.Generator().manual_seed(k)))
                        for k in range(1, args.perturbations + 1)]
        for protocol in args.protocols:
            options = probe_protocol(section, protocol)
            tic, scores = time.perf_counter(), []
            for copy in copies:
                scores.append(100 * cross_validate(copy, labels, folds, label_set, config=config, **options)["top1"])
            seconds = (time.perf_counter() - tic) / len(copies)
            print(f"| {name} | {x.shape[1]} | {protocol} | {', '.join(f'{s:.1f}' for s in scores)} | "
                  f"{max(scores) - min(scores):.1f} (mean {statistics.mean(scores):.1f}) | {seconds:.0f} |", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    main()
