"""How a clip becomes a vector, measured: segments x pooling for S3T and Random-Init, beside the
hand-crafted log-CQT statistics, on a featurized dataset's validation split.

Each row: embeddings of every clip, then a logistic regression (features standardised with
training-split statistics, C chosen on the validation split from a small grid), the validation
top-1 at that C; or, with ``--probe pipeline``, the pipeline's own probe (``s3t.probe``: the
lr x weight-decay grid chosen on valid, as ``probe.protocol: grid``, with the soundtracks'
batch of 16) and its k-NN, shown as "linear / k-NN". ``--seed`` seeds the Random-Init
encoder and the pipeline probe as ``bench/recipe_ablation.py seed=N`` does. Test accuracy is
printed only with --test: settings are chosen on validation. ``--stages`` keeps only some Swin
stages' blocks of a ``stages`` or ``bands`` embedding (``all``, or stage numbers from 1 joined by
commas, such as ``2,3``), to see which stages carry what pre-training learned.

    python bench/embedding_ablation.py --features data/features/soundtracks --checkpoint models/pretrained.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from s3t.embed import embed_spectrograms
from s3t.handcrafted import handcrafted_embeddings
from s3t.model import Encoder
from s3t.probe import DEFAULT_GRID, ProbeConfig, probe_splits
from s3t.shards import FeatureStore
from s3t.train import load_encoder

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def logistic_top1(x: np.ndarray, labels: list[str], splits: list[str]) -> tuple[float, float, float]:
    """(best C, valid top-1, test top-1) with C chosen on valid."""
    y = np.array(labels)
    masks = {s: np.array([t == s for t in splits]) for s in ("train", "valid", "test")}
    scaler = StandardScaler().fit(x[masks["train"]])
    z = scaler.transform(x)
    best = (-1.0, None, None)
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=5000).fit(z[masks["train"]], y[masks["train"]])
        valid = float((model.predict(z[masks["valid"]]) == y[masks["valid"]]).mean())
        if valid > best[0]:
            best = (valid, c, float((model.predict(z[masks["test"]]) == y[masks["test"]]).mean()))
    return best[1], best[0], best[2]


def pipeline_top1(x: torch.Tensor, labels: list[str], splits: list[str], seed: int) -> tuple[str, str, str]:
    """("lr/wd", "valid linear / k-NN", "test linear / k-NN") of the pipeline's grid probe."""
    config = ProbeConfig(epochs=50, batch_size=16, warmup_epochs=5, seed=seed)
    _, result, _ = probe_splits(x, [(label,) for label in labels], splits, sorted(set(labels)), False,
                                config=config, grid=DEFAULT_GRID, knn=True)
    chosen = f"{result['selection']['lr']:g}/{result['selection']['weight_decay']:g}"
    valid = f"{100 * result['valid']['top1']:.1f} / {100 * result['knn']['valid']:.1f}"
    test = f"{100 * result['top1']:.1f} / {100 * result['knn']['test']['top1']:.1f}"
    return chosen, valid, test


def stage_columns(encoder: Encoder, stages: str) -> torch.Tensor | None:
    """Column indices of ``stages`` ("all" or "1,3") in the encoder's embedding (its
    ``stage_dims`` blocks follow each other); None for all."""
    if stages == "all":
        return None
    if encoder.config.embed_pooling == "final":
        raise SystemExit("--stages needs a stages or bands pooling")
    widths = encoder.stage_dims
    starts = np.cumsum([0] + widths)
    chosen = [int(k) for k in stages.split(",")]
    if not all(1 <= k <= len(widths) for k in chosen):
        raise SystemExit(f"--stages {stages}: the backbone has stages 1-{len(widths)}")
    return torch.cat([torch.arange(starts[k - 1], starts[k]) for k in chosen])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--poolings", nargs="+", default=["final", "stages"])
    parser.add_argument("--stages", nargs="+", default=["all"], help='"all" or stage numbers such as 2,3')
    parser.add_argument("--probe", choices=("logistic", "pipeline"), default="logistic")
    parser.add_argument("--seed", type=int, default=0, help="Random-Init weights and the pipeline probe")
    parser.add_argument("--test", action="store_true", help="also print test top-1 (only once settings are chosen)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    store = FeatureStore(args.features)
    labels = [row[0] for row in store.labels]
    splits = list(store.splits)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}; {len(store)} clips; valid {splits.count('valid')}, test {splits.count('test')}")
    chosen = "C" if args.probe == "logistic" else "lr/wd"
    print(f"| embedding | segments | pooling | stages | dim | {chosen} | valid top-1 |" + (" test top-1 |" if args.test else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.test else ""))

    def row(name: str, segments: object, pooling: str, stages: str, x: torch.Tensor) -> None:
        if args.probe == "pipeline":
            c, valid, test = pipeline_top1(x, labels, splits, args.seed)
        else:
            best_c, top1, test_top1 = logistic_top1(x.numpy().astype(np.float64), labels, splits)
            c, valid, test = f"{best_c:g}", f"{100 * top1:.1f}", f"{100 * test_top1:.1f}"
        tail = f" {test} |" if args.test else ""
        print(f"| {name} | {segments} | {pooling} | {stages} | {x.shape[1]} | {c} | {valid} |{tail}", flush=True)

    row("hand-crafted log-CQT stats", "-", "-", "-", handcrafted_embeddings(store))
    for method, random_init in (("S3T", False), ("Random-Init", True)):
        encoder = load_encoder(args.checkpoint, random_init=random_init, seed=args.seed)
        for pooling in args.poolings:
            encoder.config = dataclasses.replace(encoder.config, embed_pooling=pooling)
            for segments in args.segments:
                start = time.perf_counter()
                x = embed_spectrograms(encoder, store, num_segments=segments)
                seconds = time.perf_counter() - start
                for stages in args.stages:
                    columns = stage_columns(encoder, stages)
                    kept = x if columns is None else x[:, columns]
                    row(f"{method} ({seconds:.0f} s)", segments, pooling, stages, kept)


if __name__ == "__main__":
    main()
