"""A short results run on one GPU: pre-train for about --minutes on a pack, then probe S3T, Random-Init and hand-crafted.

The pack (bench/gpu_pack.py) carries the task clips (labeled, train/valid/test), the
pre-training-only clips, their CQT config and the params.yaml sections used here, so this
script needs no PyYAML and no feature store on the GPU machine. The steps are the pipeline's
library calls: :func:`s3t.train.pretrain` on the clips of ``pretrain.splits`` (as
stages/pretrain.py), :func:`s3t.embed.embed_labeled` with :func:`s3t.train.load_encoder`
(``random_init=True`` for Random-Init, as stages/embed.py),
:func:`s3t.handcrafted.handcrafted_embeddings`, and :func:`s3t.probe.probe_splits` with the
``probe`` section's grid, settings and k-NN (as stages/probe.py, 100 % of the labels).

Settings that differ from params.yaml, because the run is short and on a GPU: the backbone
(``--backbone``, Swin-T by default), batch 128, lr 5e-4 (the paper's), and the epochs: unless
``--epochs`` is given, a run of ``--timing-epochs`` epochs times one epoch first (its last:
the first carries start-up), and the real run gets as many epochs as fit in what is left of
``--minutes``; should it still overrun them by 15 % (a busy machine), it stops after the
epoch that crosses that line and the probes use that epoch's checkpoint (``stopped_early``
in the JSON). Warm-up keeps params.yaml's fraction of the epochs. K defaults to one epoch of
keys (the batch times the steps per epoch): with ~500 pre-training clips a longer queue holds
several keys of the query's own clip. Checkpoints (one per epoch, by s3t.train) go to
/dev/shm when it has room, since a Swin-T checkpoint (two encoders, a copy, AdamW) is ~0.55 GB.

Writes ``--out`` (JSON; accuracies as fractions in [0, 1]) and prints a table.

    python bench/gpu_results.py --pack .gpu/soundtracks.pt --minutes 4 --out results.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from bench_pretrain import machine

from s3t.cqt import CQTConfig
from s3t.embed import EmbeddingSet, embed_labeled
from s3t.handcrafted import handcrafted_embeddings
from s3t.model import ModelConfig
from s3t.probe import ProbeConfig, lr_wd_grid, probe_splits
from s3t.train import PretrainConfig, load_encoder, pretrain

ROOT = Path(__file__).resolve().parent.parent
ROWS = (("s3t", "S3T"), ("random_init", "Random-Init"), ("handcrafted", "hand-crafted"))


class OutOfTime(Exception):
    """Raised from pretrain's on_epoch (after the epoch's checkpoint is written) to stop a run
    that overruns its minutes, so the rest of the check still fits in the machine's time."""


def scratch_dir() -> str:
    """/dev/shm when it can hold a few checkpoints (containers often give it only 64 MB)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * 2**30:
        return tempfile.mkdtemp(prefix="gpu_results_", dir=shm)
    return tempfile.mkdtemp(prefix="gpu_results_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=ROOT / ".gpu" / "soundtracks.pt")
    parser.add_argument("--minutes", type=float, default=4.0, help="pre-training wall time, timing run included")
    parser.add_argument("--epochs", type=int, default=None, help="fixed epochs (skips the timing run)")
    parser.add_argument("--timing-epochs", type=int, default=2)
    parser.add_argument("--backbone", default="swin_t")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--K", type=int, default=None, help="queue length (default: one epoch of keys)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("results.json"))
    args = parser.parse_args()
    if args.epochs is None and args.timing_epochs < 2:
        raise SystemExit("--timing-epochs must be >= 2: the first epoch carries start-up")
    started = time.perf_counter()
    device = torch.device(args.device)

    pack = torch.load(args.pack, weights_only=True)
    params, task = pack["params"], pack["task"]
    seed, section, backbone = params["seed"], params["pretrain"], params["backbone"]
    # params.yaml's backbone kwargs belong to its backbone (swin_cpu's window and drop path);
    # another backbone keeps its own defaults (swin_t: the paper's).
    model = ModelConfig(
        backbone=args.backbone, backbone_kwargs=dict(backbone["kwargs"]) if args.backbone == backbone["name"] else {},
        preprocessor=params["preprocessor"]["name"], input_size=params["preprocessor"]["input_size"],
        cqt=CQTConfig(**pack["cqt"]), embed_segments=params["embed"]["segments"],
        embed_pooling=params["embed"]["pooling"],
    )
    clips = [clip for clip, split in zip(task["clips"], task["splits"]) if split in section["splits"]]
    if "unlabeled" in section["splits"]:
        clips += pack["unlabeled"]["clips"]
    steps_per_epoch = len(clips) // args.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"{len(clips)} pre-training clips give no batch of {args.batch_size}")
    K = args.K or args.batch_size * steps_per_epoch
    warmup_fraction = section["warmup_epochs"] / section["epochs"]

    def config(epochs: int) -> PretrainConfig:
        return PretrainConfig(
            epochs=epochs, warmup_epochs=round(epochs * warmup_fraction), batch_size=args.batch_size, lr=args.lr,
            weight_decay=section["weight_decay"], grad_clip=section["grad_clip"], K=K, m=section["m"],
            T=section["T"], dim=section["dim"], num_hidden=section["num_hidden"], seed=seed, bf16=section["bf16"],
            compile=False, num_workers=0, augment=dict(params["augment"]),
        )

    work = Path(scratch_dir())
    try:
        tic = time.perf_counter()
        timing = {}
        epochs = args.epochs
        if epochs is None:
            ends: list[float] = []
            pretrain(clips, model, config(args.timing_epochs), work / "timing.pt", device=device,
                     on_epoch=lambda row: ends.append(time.perf_counter()))
            epoch_s = ends[-1] - ends[-2]
            left = args.minutes * 60 - (time.perf_counter() - tic)
            epochs = max(1, int(left / epoch_s))
            timing = {"timing_epochs": args.timing_epochs, "timing_s": ends[-1] - tic, "epoch_s": epoch_s}
        run_tic = time.perf_counter()
        deadline = tic + 1.15 * args.minutes * 60
        history: list[dict[str, float]] = []

        def on_epoch(row: dict[str, float]) -> None:
            history.append(row)
            if time.perf_counter() > deadline and len(history) < epochs:
                raise OutOfTime

        try:
            # About 20 checkpoints a run: an epoch of ~500 clips is a few steps on a GPU, less
            # time than writing Swin-T's checkpoint.
            pretrain(clips, model, config(epochs), work / "checkpoint.pt", device=device, on_epoch=on_epoch,
                     checkpoint_every=max(1, epochs // 20))
        except OutOfTime:
            pass
        run_s = time.perf_counter() - run_tic
        pretrain_s = time.perf_counter() - tic
        samples = len(history) * steps_per_epoch * args.batch_size

        tic = time.perf_counter()
        sets = {}
        for method, random_init in (("s3t", False), ("random_init", True)):
            encoder = load_encoder(work / "checkpoint.pt", random_init=random_init, seed=seed)
            sets[method] = embed_labeled(
                encoder, task["clips"], ids=task["ids"], labels=task["labels"], splits=task["splits"],
                method=method, batch_size=params["embed"]["batch_size"], device=device,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = sets["random_init"]
    sets["handcrafted"] = EmbeddingSet(
        embeddings=handcrafted_embeddings(task["clips"]), ids=reference.ids, labels=reference.labels,
        splits=reference.splits, label_set=reference.label_set, multilabel=reference.multilabel, method="handcrafted",
    )
    embed_s = time.perf_counter() - tic

    tic = time.perf_counter()
    probe = params["probe"]
    # The per-dataset probe settings; a synthetic pack (the dry run) borrows the soundtracks'.
    dataset = pack["dataset"] if pack["dataset"] in probe["batch_size"] else "soundtracks"
    probe_config = ProbeConfig(
        epochs=probe["epochs"], batch_size=probe["batch_size"][dataset], lr=probe["lr"][dataset],
        weight_decay=probe["weight_decay"], warmup_epochs=probe["warmup_epochs"], seed=seed,
    )
    grid = lr_wd_grid(probe["grid"]["lr"], probe["grid"]["weight_decay"])
    rows = {}
    for method, _ in ROWS:
        emb = sets[method]
        _, metrics, _ = probe_splits(emb.embeddings, emb.labels, emb.splits, emb.label_set, emb.multilabel,
                                     config=probe_config, grid=grid, knn=probe["knn"])
        key = "pr_auc" if emb.multilabel else "top1"
        rows[method] = {
            "metric": key, "valid": metrics["valid"][key], "test": metrics[key],
            "knn_valid": metrics["knn"]["valid"], "knn_test": metrics["knn"]["test"][key], "knn_k": metrics["knn"]["k"],
            "selection": metrics["selection"], "dim": int(emb.embeddings.shape[1]),
            "n_train": metrics["n_train"], "n_valid": metrics["n_valid"], "n_test": metrics["n_test"],
        }
    probe_s = time.perf_counter() - tic

    result = {
        "machine": machine(device),
        "pack": {"path": str(args.pack), "dataset": pack["dataset"], "factor": pack["factor"], "cqt": pack["cqt"],
                 "task_clips": len(task["clips"]), "pretrain_clips": len(clips), "labels": pack["label_set"]},
        "pretrain": {
            "model": model.to_dict(), "config": asdict(config(epochs)), "steps_per_epoch": steps_per_epoch,
            "epochs_done": len(history), "stopped_early": len(history) < epochs,
            "steps": len(history) * steps_per_epoch, "samples_seen": samples, "wall_s": pretrain_s, "run_s": run_s,
            "samples_per_s": samples / run_s, "first_loss": history[0]["loss"], "final_loss": history[-1]["loss"],
            **timing,
        },
        "probe": {"protocol": "grid", "grid": grid, "config": asdict(probe_config), "knn": probe["knn"], "percent": 100},
        "rows": rows,
        "wall_s": {"pretrain": pretrain_s, "embed": embed_s, "probe": probe_s, "total": time.perf_counter() - started},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    cfg = result["pretrain"]["config"]
    print(f"machine      {result['machine']}")
    print(f"pack         {args.pack}: {pack['dataset']}, {len(task['clips'])} task clips, {len(clips)} pre-training "
          f"clips, time compression {pack['cqt']['time_compression']}")
    print(f"pre-training {model.backbone}, {model.preprocessor} {model.input_size}, batch {cfg['batch_size']}, "
          f"K {cfg['K']}, lr {cfg['lr']:g}, {epochs} epochs ({cfg['warmup_epochs']} warm-up) = "
          f"{epochs * steps_per_epoch} steps")
    if len(history) < epochs:
        print(f"             STOPPED EARLY after epoch {len(history)}: past 1.15 x --minutes")
    print(f"             {samples} samples seen")
    if timing:
        print(f"             timing run {timing['timing_s']:.1f} s ({timing['epoch_s']:.2f} s per epoch), "
              f"then {run_s:.1f} s: {samples / run_s:.0f} samples/s (checkpoint each epoch included)")
    print(f"             loss {history[0]['loss']:.3f} (epoch 1) -> {history[-1]['loss']:.3f} (epoch {len(history)})")
    print(f"wall         pre-training {pretrain_s:.1f} s, embedding {embed_s:.1f} s, probes {probe_s:.1f} s")
    key = rows["s3t"]["metric"]
    print(f"{'row':14s} {'valid ' + key:>11s} {'test ' + key:>11s} {'k-NN valid':>11s} {'k-NN test':>10s} {'k':>3s}  probe lr, wd")
    for method, name in ROWS:
        r = rows[method]
        print(f"{name:14s} {r['valid']:11.3f} {r['test']:11.3f} {r['knn_valid']:11.3f} {r['knn_test']:10.3f} "
              f"{r['knn_k']:3d}  {r['selection']['lr']:g}, {r['selection']['weight_decay']:g}")
    print(f"S3T - Random-Init test {key}: {rows['s3t']['test'] - rows['random_init']['test']:+.3f}; "
          f"S3T - hand-crafted: {rows['s3t']['test'] - rows['handcrafted']['test']:+.3f}")


if __name__ == "__main__":
    main()
