"""One row of the pre-training recipe ablation: pre-train with params.yaml's settings plus Hydra
overrides, then score S3T, Random-Init and the hand-crafted statistics on the validation split.

The base is what `dvc exp run -S ...` would compose from conf/ (same Hydra composition); the data
are the featurized stores of `pretrain.dataset` (run `dvc repro featurize` first). The probe is
the pipeline's protocol (`probe.protocol` of the composed params; `probe.protocol=grid` for the rows
scored before the logistic protocol) plus k-NN.
Only validation numbers are printed, in two rows: the valid split's, then the grouped cross-validation
over train + valid (`s3t.probe.cross_validate`, 5 folds by track, as `bench/cv_score.py`), on which
the default is chosen; test is reported once.

    python bench/recipe_ablation.py                          # the current default
    python bench/recipe_ablation.py pretrain.K=512 pretrain.epochs=50
    python bench/recipe_ablation.py pretrain.epochs=200 --record reports/ablation/compute_curve.csv
    python bench/recipe_ablation.py soundtracks.pretraining_packages=true --without-packages flare-game,pushover-data

``--record`` appends the row to a CSV (valid top-1 of each row, the differences S3T minus
hand-crafted and S3T minus Random-Init, samples seen, minutes of the pre-training loop summed
from the run's history, load, commit) that `dvc plots show`
draws against samples seen (dvc.yaml's ``plots``). Runs resume from work/ablation/<overrides>-<digest>/,
the digest of the code and of the composed params, so a finished run of older code or of another
default is never taken for this one's.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from dvc.utils.hydra import compose_and_dump

from s3t.allocator import keep_freed_memory
from s3t.checkpoint import load_checkpoint
from s3t.cqt import CQTConfig
from s3t.embed import embed_spectrograms
from s3t.handcrafted import handcrafted_embeddings
from s3t.model import Encoder, ModelConfig
from s3t.datasets.soundtracks import read_index
from s3t.probe import ProbeConfig, cross_validate, probe_splits
from s3t.manifest import dataset_recordings
from s3t.shards import FeatureStore, Recompressed, audio_hours, clip_paths, clip_recordings, pretraining_clips
from s3t.train import PretrainConfig, pretrain, record_provenance, run_key

from cv_score import probe_protocol, train_valid_folds  # bench/ is this script's folder

ROOT = Path(__file__).resolve().parent.parent


def compose(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(ROOT / "conf"), None, "config", "", overrides)
        return yaml.safe_load(out.read_text())


def at_compression(clips, stored: CQTConfig, wanted: CQTConfig):
    """``clips`` (made with ``stored``) as featurizing with ``wanted`` would give them: the same
    clips, or :class:`s3t.shards.Recompressed` when ``wanted`` compresses time a whole number of
    times more (a `cqt.time_compression=N` row needs no new features)."""
    if wanted == stored:
        return clips
    factor, rest = divmod(wanted.time_compression, stored.time_compression)
    if rest or dataclasses.replace(stored, time_compression=wanted.time_compression) != wanted:
        raise SystemExit(f"the features were made with {stored}; this row asks for {wanted}. Only a multiple of "
                         "the stored time_compression can be derived from them: featurize again (dvc repro featurize)")
    return Recompressed(clips, factor)


def check_soundtracks_packages(raw: Path, pretraining_packages: bool) -> None:
    """Stop unless the soundtracks' clips on disk (the track tables of ``raw``, whose tracks are
    ``package/path``) were cut with this row's ``soundtracks.pretraining_packages``: the override
    names the data, but only the download and featurize stages change them, so a row would otherwise
    train on the other data under this one's name."""
    wanted = {entry.package for entry in read_index(pretraining_packages=pretraining_packages)}
    have = {track.split("/", 1)[0] for track in dataset_recordings(raw).values()}
    if have != wanted:
        raise SystemExit(f"{raw} holds the clips of {len(have)} packages; this row asks for "
                         f"soundtracks.pretraining_packages={str(pretraining_packages).lower()} ({len(wanted)} packages). "
                         "Set it in params.yaml and run dvc repro featurize first")


def without_packages(clips: torch.utils.data.Dataset, without: list[str]) -> torch.utils.data.Dataset:
    """What :func:`s3t.shards.pretraining_clips` returned, less the clips whose folder (their package)
    is in ``without``; the same shape of dataset (a store's ``Subset``, or a ``ConcatDataset`` of them)."""
    parts = clips.datasets if isinstance(clips, torch.utils.data.ConcatDataset) else [clips]
    kept, found = [], set()
    for part in parts:
        store, index = (part.dataset, part.indices) if isinstance(part, torch.utils.data.Subset) else (part, range(len(part)))
        packages = [Path(path).parent.name for path in clip_paths(torch.utils.data.Subset(store, index))]
        found.update(packages)
        kept.append(torch.utils.data.Subset(store, [i for i, package in zip(index, packages) if package not in without]))
    if set(without) - found:
        raise SystemExit(f"--without-packages names {sorted(set(without) - found)}, which the pre-training clips do not hold")
    return torch.utils.data.ConcatDataset(kept) if len(kept) > 1 else kept[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for dvc exp run -S")
    parser.add_argument("--work", default=str(ROOT / "work" / "ablation"), help="checkpoints of the runs")
    parser.add_argument("--record", type=Path, help="append the row to this CSV (for dvc plots)")
    parser.add_argument("--without-packages", default="",
                        help="comma-separated packages whose clips pre-training leaves out (the clips' folder names), "
                             "so that bench/transfer_score.py can score the run on them as unheard music")
    args = parser.parse_args()
    without = sorted(filter(None, args.without_packages.split(",")))
    torch.set_num_threads(os.cpu_count() or 1)
    keep_freed_memory()  # as the pretrain stage does
    p = compose(args.overrides)
    data = p["pretrain"]["dataset"]
    features = ROOT / "data" / "features"
    if data == "soundtracks":
        check_soundtracks_packages(ROOT / "data" / "raw" / data, p["soundtracks"]["pretraining_packages"])
    model = ModelConfig(
        backbone=p["backbone"]["name"], backbone_kwargs=dict(p["backbone"]["kwargs"]),
        preprocessor=p["preprocessor"]["name"], input_size=p["preprocessor"]["input_size"], cqt=CQTConfig(**p["cqt"]),
        embed_segments=p["embed"]["segments"], embed_pooling=p["embed"]["pooling"],
    )
    train_keys = {k: v for k, v in p["pretrain"].items() if k not in ("dataset", "splits", "devices")}
    config = PretrainConfig(**train_keys, seed=p["seed"], augment=dict(p["augment"]))
    clips, data_digest = pretraining_clips(features / data, p["pretrain"]["splits"])
    if without:
        clips = without_packages(clips, without)
    provenance = {"dataset": data, "splits": list(p["pretrain"]["splits"]), "clips": len(clips), "hours": audio_hours(clips)}
    groups = None
    if config.needs_recordings:
        groups = clip_recordings(clips, dataset_recordings(ROOT / "data" / "raw" / data), root=ROOT)
    clips = at_compression(clips, FeatureStore(features / data).cqt_config, model.cqt)

    name = "_".join(args.overrides + [f"without-{'+'.join(without)}"] * bool(without)).replace("/", "-") or "default"
    key = run_key({**p, "clips": data_digest, "without_packages": without}, __file__)[:12]
    checkpoint = Path(args.work) / f"{name}-{key}" / "checkpoint.pt"
    history = pretrain(clips, model, config, checkpoint, groups=groups, resume=True)
    # What it trained on, as the pipeline's models/pretrained.pt says (bench/transfer_score.py checks it).
    record_provenance(checkpoint, checkpoint, provenance)
    # From the run's own history, so a resumed or copied run reports the minutes its epochs took.
    per_epoch = (len(clips) // config.batch_size) * config.batch_size
    minutes = sum(per_epoch / row["samples_per_s"] for row in history) / 60
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
    # The grouped cross-validation over train + valid (bench/cv_score.py): four times valid's clips.
    keep, _, folds = train_valid_folds(eval_store, p["eval_datasets"][0], 5)
    options = probe_protocol(p["probe"])  # the composed params' protocol (an override can set it)
    cells, valid, fold_cells = [], [], []
    eval_clips = at_compression(eval_store, eval_store.cqt_config, model.cqt)
    for x in (embed_spectrograms(encoder.eval(), eval_clips), embed_spectrograms(random_init.eval(), eval_clips),
              handcrafted_embeddings(eval_clips)):
        _, result, _ = probe_splits(x, labels, eval_store.splits, label_set, False, config=probe, knn=True,
                                    **options)
        cells.append(f"{100 * result['valid']['top1']:.1f} / {100 * result['knn']['valid']:.1f}")
        valid.append(100 * result["valid"]["top1"])
        scores = cross_validate(x[keep], [labels[i] for i in keep], folds, label_set, config=probe, **options)
        fold_cells.append(f"{100 * scores['top1']:.1f} / {100 * scores['knn_top1']:.1f}")
    samples = len(history) * per_epoch
    load = os.getloadavg()[0]
    row_name = " ".join(args.overrides + [f"--without-packages {','.join(without)}"] * bool(without)) or "default"
    print(f"| {row_name} | {' | '.join(cells)} | {history[-1]['loss']:.3f} | "
          f"{samples} | {minutes:.1f} | {load:.1f} |", flush=True)
    print(f"| {row_name} (folds) | {' | '.join(fold_cells)} | | | | |", flush=True)
    if args.record:
        row = {
            "overrides": row_name, "samples": samples,
            "s3t": round(valid[0], 1), "random_init": round(valid[1], 1), "handcrafted": round(valid[2], 1),
            "s3t_minus_handcrafted": round(valid[0] - valid[2], 1), "s3t_minus_random_init": round(valid[0] - valid[1], 1),
            "final_loss": round(history[-1]["loss"], 4), "minutes": round(minutes, 1), "load": round(load, 1),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=ROOT).stdout.strip(),
        }
        args.record.parent.mkdir(parents=True, exist_ok=True)
        new = not args.record.exists()
        with args.record.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


if __name__ == "__main__":
    sys.exit(main())
