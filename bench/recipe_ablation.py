"""One row of the pre-training recipe ablation: pre-train with params.yaml's settings plus Hydra
overrides, then score S3T, Random-Init and the hand-crafted statistics on the validation split.

The base is what `dvc exp run -S ...` would compose from conf/ (same Hydra composition); the data
are the featurized stores of `pretrain.dataset` (run `dvc repro featurize` first). The probe is
the pipeline's default protocol (the best of the lr x weight-decay grid on valid) plus k-NN.
Only validation numbers are printed: the default is chosen on them, test is reported once.

    python bench/recipe_ablation.py                          # the current default
    python bench/recipe_ablation.py pretrain.K=512 pretrain.epochs=50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from dvc.utils.hydra import compose_and_dump
from torch.utils.data import ConcatDataset, Subset

from s3t.checkpoint import load_checkpoint
from s3t.cqt import CQTConfig
from s3t.embed import embed_spectrograms
from s3t.handcrafted import handcrafted_embeddings
from s3t.model import Encoder, ModelConfig
from s3t.probe import DEFAULT_GRID, ProbeConfig, probe_splits
from s3t.shards import FeatureStore
from s3t.train import PretrainConfig, pretrain

ROOT = Path(__file__).resolve().parent.parent


def compose(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(ROOT / "conf"), None, "config", "", overrides)
        return yaml.safe_load(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for dvc exp run -S")
    parser.add_argument("--work", default=str(ROOT / "work" / "ablation"), help="checkpoints of the runs")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    p = compose(args.overrides)
    data = p["pretrain"]["dataset"]
    features = ROOT / "data" / "features"
    model = ModelConfig(
        backbone=p["backbone"]["name"], backbone_kwargs=dict(p["backbone"]["kwargs"]),
        preprocessor=p["preprocessor"]["name"], input_size=p["preprocessor"]["input_size"], cqt=CQTConfig(**p["cqt"]),
        embed_segments=p["embed"]["segments"], embed_pooling=p["embed"]["pooling"],
    )
    train_keys = {k: v for k, v in p["pretrain"].items() if k not in ("dataset", "splits", "devices")}
    config = PretrainConfig(**train_keys, seed=p["seed"], augment=dict(p["augment"]))
    store = FeatureStore(features / data)
    parts = [Subset(store, [i for i, s in enumerate(store.splits) if s in p["pretrain"]["splits"]])]
    if "unlabeled" in p["pretrain"]["splits"]:
        parts.append(FeatureStore(features / data / "unlabeled"))
    clips = ConcatDataset([part for part in parts if len(part)])

    name = "_".join(args.overrides).replace("/", "-") or "default"
    checkpoint = Path(args.work) / name / "checkpoint.pt"
    start = time.perf_counter()
    history = pretrain(clips, model, config, checkpoint, resume=True)
    minutes = (time.perf_counter() - start) / 60
    encoder = Encoder(model)
    encoder.backbone.load_state_dict(load_checkpoint(checkpoint)["encoder"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p["seed"])
        random_init = Encoder(model)

    eval_store = FeatureStore(features / p["eval_datasets"][0])
    labels = list(eval_store.labels)
    label_set = sorted({x for row in labels for x in row})
    probe = ProbeConfig(epochs=p["probe"]["epochs"], batch_size=p["probe"]["batch_size"][p["eval_datasets"][0]],
                        warmup_epochs=p["probe"]["warmup_epochs"], seed=p["seed"])
    cells = []
    for x in (embed_spectrograms(encoder.eval(), eval_store), embed_spectrograms(random_init.eval(), eval_store),
              handcrafted_embeddings(eval_store)):
        _, result, _ = probe_splits(x, labels, eval_store.splits, label_set, False, config=probe, grid=DEFAULT_GRID,
                                    knn=True)
        cells.append(f"{100 * result['valid']['top1']:.1f} / {100 * result['knn']['valid']:.1f}")
    samples = len(history) * (len(clips) // config.batch_size) * config.batch_size
    print(f"| {' '.join(args.overrides) or 'default'} | {' | '.join(cells)} | {history[-1]['loss']:.3f} | "
          f"{samples} | {minutes:.1f} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
