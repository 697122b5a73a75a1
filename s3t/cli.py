"""The ``s3t`` command line: pretrain, embed, probe, predict, corpus.

This is where side effects live (files, devices, seeding, progress bars); every
computation is a call into the library. Bad input exits with status 2 and one line
saying what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from s3t.audio import find_audio_files
from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.cqt import CQT
from s3t.embed import EmbeddingSet, embed_spectrograms
from s3t.features import Rejected, featurize_files
from s3t.manifest import is_multilabel, label_vocabulary, read_manifest
from s3t.model import ModelConfig
from s3t.probe import DEFAULT_GRID, LinearProbe, ProbeConfig, probe_splits
from s3t.train import PretrainConfig, load_encoder, pretrain

class CLIError(ValueError):
    """Bad command-line input."""


def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="clip", dynamic_ncols=True, file=sys.stderr)


def _featurize(paths: Sequence[str], cqt_config, device: torch.device, workers: int, desc: str):
    cqt = CQT.from_config(cqt_config).to(device)
    with _progress(len(paths), desc) as bar:
        return featurize_files(paths, cqt, workers=workers, on_file=lambda _: bar.update())


def _report_rejected(rejected: list[Rejected]) -> None:
    for r in rejected:
        print(f"s3t: skipped {r.path}: {r.reason}", file=sys.stderr)


def cmd_pretrain(args: argparse.Namespace) -> None:
    model_fields: dict[str, Any] = {}
    train_fields: dict[str, Any] = {}
    for key in ("backbone", "preprocessor"):
        if getattr(args, key) is not None:
            model_fields[key] = getattr(args, key)
    for key in ("epochs", "batch_size", "K", "m", "lr", "warmup_epochs", "seed"):
        if getattr(args, key) is not None:
            train_fields[key] = getattr(args, key)
    if args.compile:
        train_fields["compile"] = True
    model = ModelConfig(**model_fields)
    if args.time_compression is not None:
        model = replace(model, cqt=replace(model.cqt, time_compression=args.time_compression))
    config = PretrainConfig(**train_fields)

    paths = [str(p) for root in args.audio for p in find_audio_files(root)]
    if not paths:
        raise CLIError(f"no audio files found under {', '.join(args.audio)}")
    device = _device(args.device)
    clips, _, rejected = _featurize(paths, model.cqt, device, args.workers, "featurize")
    _report_rejected(rejected)
    print(f"s3t: {len(clips)} clips for pre-training ({len(rejected)} skipped)", file=sys.stderr)

    steps = config.epochs * (len(clips) // config.batch_size)
    with tqdm(total=steps, desc="pretrain", unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
        def on_step(s: dict[str, float]) -> None:
            bar.n = s["step"]
            bar.set_postfix(loss=f"{s['loss']:.3f}", lr=f"{s['lr']:.2e}", samples_s=f"{s['samples_per_s']:.0f}")
            bar.refresh()

        history = pretrain(clips, model, config, args.out, resume=args.resume, device=device, on_step=on_step)
    if history:
        print(f"s3t: wrote {args.out} (epoch {history[-1]['epoch'] + 1}, loss {history[-1]['loss']:.4f})")


def _embed_manifest(args: argparse.Namespace) -> tuple[EmbeddingSet, list[Rejected]]:
    rows = read_manifest(args.manifest, group_column=args.group_column)
    device = _device(args.device)
    encoder = load_encoder(args.checkpoint, random_init=args.random_init, seed=args.seed)
    clips, kept, rejected = _featurize([r.path for r in rows], encoder.config.cqt, device, args.workers, "featurize")
    _report_rejected(rejected)
    by_path = {r.path: r for r in rows}
    with _progress(len(clips), "embed") as bar:
        emb = embed_spectrograms(
            encoder, clips, batch_size=args.batch_size, num_segments=args.segments, device=device,
            on_batch=lambda n: bar.update(n - bar.n),
        )
    embeddings = EmbeddingSet(
        embeddings=emb,
        ids=kept,
        labels=[by_path[p].labels for p in kept],
        splits=[by_path[p].split for p in kept],
        label_set=label_vocabulary(rows),
        multilabel=is_multilabel(rows),
        method="random_init" if args.random_init else "s3t",
    )
    return embeddings, rejected


def cmd_embed(args: argparse.Namespace) -> None:
    embeddings, rejected = _embed_manifest(args)
    save_checkpoint({"embeddings": embeddings.to_state(), "rejected": [[r.path, r.reason] for r in rejected]}, args.out)
    print(f"s3t: wrote {args.out}: {tuple(embeddings.embeddings.shape)} embeddings, {len(rejected)} skipped")


def cmd_probe(args: argparse.Namespace) -> None:
    if args.embeddings and args.group_column:
        # The embeddings file carries no groups; silently skipping the check would suggest it passed.
        raise CLIError("--group-column checks a manifest; use it with --checkpoint and --manifest, not --embeddings")
    if args.embeddings:
        state = load_checkpoint(args.embeddings)
        embeddings, rejected = EmbeddingSet.from_state(state["embeddings"]), state["rejected"]
    elif args.checkpoint and args.manifest:
        embeddings, skipped = _embed_manifest(args)
        rejected = [[r.path, r.reason] for r in skipped]
    else:
        raise CLIError("give --embeddings E, or both --checkpoint C and --manifest M")
    config = ProbeConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    probe, result, history = probe_splits(
        embeddings.embeddings, embeddings.labels, embeddings.splits, embeddings.label_set, embeddings.multilabel,
        fraction=args.fraction, config=config, grid=DEFAULT_GRID if args.protocol == "grid" else None, knn=True,
    )
    result.update(method=embeddings.method, rejected=rejected)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.save_probe:
        save_checkpoint({"probe": probe.to_state(), "history": history}, args.save_probe)
    shown = {k: round(v, 4) for k, v in result.items() if isinstance(v, float) and k != "fraction"}
    shown.update({f"knn_{k}": round(v, 4) for k, v in result["knn"]["test"].items()}, knn_k=result["knn"]["k"])
    if "selection" in result:
        shown["selected"] = result["selection"]
    print(f"s3t: probe on test ({embeddings.method}): {json.dumps(shown)}")


def cmd_predict(args: argparse.Namespace) -> None:
    device = _device(args.device)
    encoder = load_encoder(args.checkpoint)
    probe = LinearProbe.from_state(load_checkpoint(args.probe)["probe"]).eval()
    clips, kept, rejected = _featurize(args.files, encoder.config.cqt, device, 0, "featurize")
    _report_rejected(rejected)
    if not clips:
        raise CLIError("none of the files could be read")
    emb = embed_spectrograms(encoder, clips, device=device)
    with torch.no_grad():
        scores = probe.scores(emb)
    k = min(args.top, len(probe.labels))
    for path, row in zip(kept, scores):
        top = torch.topk(row, k)
        ranked = ", ".join(f"{probe.labels[i]} {v:.3f}" for v, i in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{path}: {ranked}")
    if rejected:
        sys.exit(1)


def cmd_corpus(args: argparse.Namespace) -> None:
    from s3t.corpus import generate_corpus

    manifest = generate_corpus(args.out, args.clips_per_genre, seed=args.seed, seconds=args.seconds, workers=args.workers)
    print(f"s3t: wrote {manifest}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3t", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
        p.add_argument("--workers", type=int, default=0, help="decoding worker processes (0: in-process)")
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser(
        "pretrain", help="self-supervised MoCo v2 pre-training on folders of unlabeled audio (paper settings by default)"
    )
    p.add_argument("--audio", action="append", required=True, help="folder of audio files, searched recursively (repeatable)")
    p.add_argument("--out", required=True, help="checkpoint path to write")
    p.add_argument("--backbone", help="a registered backbone (default swin_t; swin_cpu for CPUs)")
    p.add_argument("--preprocessor", choices=("time_folding", "frequency_tiling"))
    p.add_argument("--time-compression", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--K", type=int, help="queue size (keep it below the number of clips)")
    p.add_argument("--m", type=float, help="key-encoder momentum")
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    common(p)
    p.set_defaults(func=cmd_pretrain)

    def group_column(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--group-column",
            metavar="NAME",
            help="manifest column that groups clips (e.g. track, artist); the loader checks no group spans two splits",
        )

    def encode_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--random-init", action="store_true", help="use a randomly initialised encoder (baseline)")
        p.add_argument("--segments", type=int, default=None, help="segments per clip, mean-pooled (default: the checkpoint's setting)")
        common(p)

    p = sub.add_parser("embed", help="embed the clips of a manifest with a frozen encoder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--manifest", required=True, help="CSV with columns path,label,split (in any order; others ignored)")
    group_column(p)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    encode_args(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("probe", help="train a linear probe on frozen embeddings and report test metrics")
    p.add_argument("--checkpoint")
    p.add_argument("--manifest", help="CSV with columns path,label,split (in any order; others ignored)")
    group_column(p)
    p.add_argument("--embeddings", help="embeddings written by `s3t embed` (instead of --checkpoint/--manifest)")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of training labels (stratified)")
    p.add_argument("--save-probe", help="write the trained probe here (for `s3t predict`)")
    p.add_argument("--epochs", type=int, default=ProbeConfig.epochs)
    p.add_argument("--batch-size", type=int, default=ProbeConfig.batch_size)
    p.add_argument("--lr", type=float, default=ProbeConfig.lr, help="learning rate of the paper protocol")
    p.add_argument(
        "--protocol", choices=("grid", "paper"), default="grid",
        help="grid: the best (lr, weight decay) of a 3 x 3 grid on the valid split (default); paper: --lr, wd 0.05",
    )
    encode_args(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("predict", help="print the top labels of audio files")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--probe", required=True)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("files", nargs="+")
    p.add_argument("--device")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("corpus", help="generate the bundled multi-genre music corpus")
    p.add_argument("--out", required=True)
    p.add_argument("--clips-per-genre", type=int, default=40)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_corpus)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as err:
        print(f"s3t: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
