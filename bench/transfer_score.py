"""Score pre-trained checkpoints on music none of them heard: the soundtrack packages outside the
task, told apart by package, by grouped cross-validation (folds by track).

The default pipeline pre-trains on pieces of the five task packages' tracks. The six other packages of
the soundtracks' index are pre-training audio only (`soundtracks.pretraining_packages: true` adds
them), so an encoder pre-trained without them has never heard them. Labelled by package, their clips
make a second task for the question the held-out recordings ask: does what pre-training learned carry
over to other music, better than the hand-crafted statistics and a random Swin? Scored like
`bench/cv_score.py`: every clip once, folds by track, the pipeline's probe protocol with the next
fold as valid; it is a validation measure (none of these clips is in the task's test split).

    python bench/transfer_score.py --tree CHECKOUT --group default CK0 CK1 ... [--group NAME CK ...]
    python bench/transfer_score.py --tree CHECKOUT --packages flare-game,pushover-data --group ...

``--tree`` is a checkout whose data were made with `soundtracks.pretraining_packages: true`
(`python stages/download.py soundtracks && python stages/featurize.py soundtracks` there, what
`dvc repro featurize` runs). ``--packages`` scores only those packages, for runs that pre-trained on
the others (`bench/recipe_ablation.py --without-packages`). A checkpoint pre-trained on more soundtrack
clips than the packages outside the scored ones hold is refused: it has heard this music. ``--heard``
scores such checkpoints anyway, for the other question: what pre-training on a user's own unlabelled
music buys on that music (the scored clips among the pre-training clips, their labels never seen);
that is not the held-out stand-in, and the script says which checkpoints heard the music.
"""

from __future__ import annotations

import argparse
import collections
import os
from pathlib import Path

import torch
import yaml

from s3t.checkpoint import load_checkpoint
from s3t.manifest import dataset_recordings, read_manifest
from s3t.probe import group_folds
from s3t.shards import UNLABELED, FeatureStore, clip_recordings

from cv_score import checkpoint_arguments, checkpoint_groups, score_checkpoints  # bench/ is this script's folder

ROOT = Path(__file__).resolve().parent.parent
DATASET = "soundtracks"


def transfer_clips(tree: Path, only: list[str]) -> tuple[list[int], list[str], list[str], int, FeatureStore]:
    """The unlabeled store's clips of packages outside the task (of ``only``, when given): their rows,
    packages and tracks, the number of the other pre-training clips (a run that heard none of the
    scored music pre-trained on at most that many), and the store."""
    raw, features = tree / "data" / "raw" / DATASET, tree / "data" / "features" / DATASET / UNLABELED
    # Clips sit in a folder named after their package: clips/<package>/ (task), unlabeled/<package>/.
    task = {Path(row.path).parent.name for row in read_manifest(raw / "manifest.csv")}
    store = FeatureStore(features)
    packages = [Path(row["path"]).parent.name for row in store.rows]
    unknown = set(only) - set(packages)
    if unknown:
        raise SystemExit(f"--packages names {sorted(unknown)}, which {features} does not hold")
    keep = [i for i, package in enumerate(packages) if package not in task and (not only or package in only)]
    if len({packages[i] for i in keep}) < 2:
        raise SystemExit(f"{features} holds the pre-training clips of {len(set(packages))} packages, "
                         f"{len(task)} of them the task's; make its data with soundtracks.pretraining_packages: true")
    tracks = clip_recordings(torch.utils.data.Subset(store, keep), dataset_recordings(raw), root=tree)
    return keep, [packages[i] for i in keep], tracks, len(packages) - len(keep), store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, required=True,
                        help="a checkout whose data were made with soundtracks.pretraining_packages: true")
    parser.add_argument("--packages", default="", help="comma-separated packages to score (default: all outside the task)")
    parser.add_argument("--heard", action="store_true",
                        help="score checkpoints that pre-trained on the scored packages' clips too (see above)")
    checkpoint_arguments(parser)
    args = parser.parse_args()
    groups = checkpoint_groups(parser, args)
    torch.set_num_threads(os.cpu_count() or 1)
    only = sorted(filter(None, args.packages.split(",")))
    keep, packages, tracks, other_clips, store = transfer_clips(args.tree.resolve(), only)
    for checkpoint in (c for checkpoints in groups.values() for c in checkpoints):
        data = load_checkpoint(checkpoint).get("data")
        if data is None:  # recipe_ablation.py's runs before it recorded their data
            print(f"{checkpoint}: no record of its pre-training data; not checked", flush=True)
        elif data["dataset"] == DATASET and data["clips"] > other_clips:
            heard = (f"{checkpoint} pre-trained on {data['clips']} soundtrack clips, more than the {other_clips} "
                     "outside the scored packages: it has heard the music scored here")
            if not args.heard:
                raise SystemExit(heard)
            print(f"{heard} (--heard)", flush=True)
    folds = group_folds(tracks, packages, args.folds)
    per_package = collections.Counter(packages)
    tracks_per = collections.Counter(package for package, _ in set(zip(packages, tracks)))
    print(f"{len(keep)} clips of {len(set(tracks))} tracks of {len(per_package)} packages in {args.folds} folds of "
          f"{', '.join(str(folds.count(f)) for f in range(args.folds))} clips; "
          + ", ".join(f"{p} {per_package[p]} clips / {tracks_per[p]} tracks" for p in sorted(per_package))
          + f"; segments per clip: {args.segments or 'each checkpoint setting'}; "
          f"encoder: {'key' if args.encoder == 'k' else 'query'}", flush=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    clips = [store[i] for i in keep]
    score_checkpoints(groups, clips, [(p,) for p in packages], folds, params["probe"], DATASET, args.segments, args.encoder,
                      args.protocol, args.stages)


if __name__ == "__main__":
    main()
