"""Pack a dataset's features small enough to travel to a GPU machine: one torch file for bench/gpu_results.py.

Reads the task store (``--features``, labeled clips with train/valid/test splits) and its
pre-training-only store (``<features>/unlabeled``) with :class:`s3t.shards.FeatureStore`,
compresses time by ``--factor`` and writes float16 clips, labels, splits, ids, the label set,
the CQT config of the packed features, and the params.yaml sections the results run needs
(the GPU machine has no PyYAML guarantee, and the settings should travel with the data).

Time compression is the CQT's own (:func:`s3t.cqt.compress_time`): the stored value is
log(magnitude + eps), so exp gives magnitude + eps, block means of that are block means of the
magnitude plus eps, and their log is what a CQT with ``time_compression * factor`` stores.
The carried paths share 64 MiB (67.1 MB; the wheels take ~1.6 MB), so ``--max-mb`` (default 62)
refuses a larger file, and without ``--factor`` the smallest factor of 4, 8, 16, 32, 64 whose
estimate (float16 bytes of every clip's compressed frames, from the stores' indexes) fits is
taken: 8 for the pool task's default 4 h pool (974 task clips and 480 pieces: ~79 MB at 4, ~40 at 8), 16 for the
whole pool (974 and 2,525 pieces of 30 s: estimates 187 MB at 4, 94 at 8, 47 at 16; written: 47.9 MB).

``--synthetic N`` packs N random clips per split (and 2N unlabeled) in the same format, with a
class-dependent spectral bump, for the CPU dry run of bench/gpu_check.sh.

    python bench/gpu_pack.py                      # data/features/soundtracks -> .gpu/soundtracks.pt
    python bench/gpu_pack.py --synthetic 8 --out /tmp/tiny.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
import yaml

from s3t.cqt import CQTConfig
from s3t.shards import FeatureStore, Recompressed

ROOT = Path(__file__).resolve().parent.parent
PARAM_SECTIONS = ("seed", "pretrain", "augment", "preprocessor", "backbone", "embed", "probe")
FORMAT = 1


def compressed(store: FeatureStore, factor: int) -> list[torch.Tensor]:
    """Each clip (F, T) -> (F, ceil(T / factor)) float16, pooled on the linear magnitude."""
    return [clip.to(torch.float16) for clip in Recompressed(store, factor)]


FACTORS = (4, 8, 16, 32, 64)


def estimated_mb(stores: list[FeatureStore], factor: int) -> float:
    """The pack's float16 clip bytes at ``factor``, in MB, from the stores' frame counts (no clip is read)."""
    return sum(s.cqt_config.n_bins * -(-s.rows[i]["frames"] // factor) * 2 for s in stores for i in range(len(s))) / 1e6


def choose_factor(stores: list[FeatureStore], max_mb: float) -> int:
    """The smallest of :data:`FACTORS` whose estimate leaves 5 % of ``max_mb`` for the ids and labels."""
    for factor in FACTORS:
        if estimated_mb(stores, factor) <= 0.95 * max_mb:
            return factor
    raise SystemExit(f"even factor {FACTORS[-1]} gives {estimated_mb(stores, FACTORS[-1]):.1f} MB > --max-mb {max_mb:g}")


def real_pack(features: Path, factor: int | None, max_mb: float) -> dict:
    task = FeatureStore(features)
    unlabeled = FeatureStore(features / "unlabeled")
    if factor is None:
        factor = choose_factor([task, unlabeled], max_mb)
    if unlabeled.cqt_config != task.cqt_config:
        raise SystemExit(f"{features} and its unlabeled store were made with different CQT settings")
    cqt = dataclasses.replace(task.cqt_config, time_compression=task.cqt_config.time_compression * factor)
    return {
        "dataset": features.name,
        "factor": factor,
        "cqt": dataclasses.asdict(cqt),
        "task": {"clips": compressed(task, factor), "ids": list(task.clip_ids),
                 "labels": [list(row) for row in task.labels], "splits": list(task.splits)},
        "unlabeled": {"clips": compressed(unlabeled, factor), "ids": list(unlabeled.clip_ids)},
    }


def synthetic_pack(per_split: int, factor: int, frames: int = 1292) -> dict:
    """Random log-CQT-like clips; each of two classes lifts its own band of bins, so probes can learn."""
    cqt = CQTConfig(time_compression=factor)
    g = torch.Generator().manual_seed(0)
    length = -(-frames // factor)

    def clip(label: int | None) -> torch.Tensor:
        x = torch.randn(cqt.n_bins, length, generator=g) - 5.0
        if label is not None:
            x[20 + 30 * label : 30 + 30 * label] += 2.0
        return x.to(torch.float16)

    splits = [s for s in ("train", "valid", "test") for _ in range(per_split)]
    labels = [["a"] if i % 2 == 0 else ["b"] for i in range(3 * per_split)]
    return {
        "dataset": "synthetic",
        "factor": factor,
        "cqt": dataclasses.asdict(cqt),
        "task": {"clips": [clip(0 if row == ["a"] else 1) for row in labels], "ids": [f"clip{i:03d}" for i in range(len(labels))],
                 "labels": labels, "splits": splits},
        "unlabeled": {"clips": [clip(None) for _ in range(2 * per_split)],
                      "ids": [f"unlabeled{i:03d}" for i in range(2 * per_split)]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=ROOT / "data" / "features" / "soundtracks")
    parser.add_argument("--factor", type=int, default=None,
                        help="frames averaged into one (on the linear magnitude); default: the smallest that fits --max-mb")
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu" / "soundtracks.pt")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--synthetic", type=int, default=None, metavar="N", help="N random clips per split instead")
    parser.add_argument("--max-mb", type=float, default=62.0, help="refuse a pack larger than this")
    args = parser.parse_args()

    tic = time.perf_counter()
    pack = (synthetic_pack(args.synthetic, args.factor or 4) if args.synthetic
            else real_pack(args.features, args.factor, args.max_mb))
    with args.params.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    pack.update(format=FORMAT, params={k: params[k] for k in PARAM_SECTIONS},
                label_set=sorted({label for row in pack["task"]["labels"] for label in row}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save(pack, tmp)
    size_mb = tmp.stat().st_size / 1e6
    if size_mb > args.max_mb:
        tmp.unlink()
        raise SystemExit(f"the pack would be {size_mb:.1f} MB > --max-mb {args.max_mb:g}; raise --factor "
                         f"(it was {pack['factor']})")
    tmp.replace(args.out)

    task, unlabeled = pack["task"], pack["unlabeled"]
    frames = [c.shape[1] for c in task["clips"] + unlabeled["clips"]]
    counts = {s: task["splits"].count(s) for s in ("train", "valid", "test")}
    print(f"pack         {args.out} ({size_mb:.1f} MB, written in {time.perf_counter() - tic:.1f} s)")
    print(f"dataset      {pack['dataset']}: {len(task['clips'])} task clips {counts}, "
          f"{len(unlabeled['clips'])} unlabeled, {len(pack['label_set'])} labels")
    print(f"features     {pack['cqt']['n_bins']} bins, time compression {pack['cqt']['time_compression']} "
          f"(factor {pack['factor']}), {min(frames)}..{max(frames)} frames per clip, float16")


if __name__ == "__main__":
    main()
