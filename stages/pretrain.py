"""Stage pretrain: MoCo v2 pre-training on the features of `pretrain.dataset` -> models/pretrained.pt
(with the data it saw and the software versions) and its model card models/pretrained.md (`s3t info`).

The in-progress checkpoint lives in work/pretrain/<hash of the resolved config and of the code>/,
so a killed run resumes where it stopped (same config, same code) and a changed config or a change
to the library or this stage starts afresh (a finished run of older code is never reused).

With `pretrain.positives: recording` or `pretrain.negatives: other_recordings` the recording of each
clip comes from the dataset folder's tables with a `track` column (data/raw/<dataset>/manifest.csv and
unlabeled.csv; `s3t.manifest.dataset_recordings`); a clip listed in neither is its own recording.

Several devices (DDP). With `pretrain.devices` > 1 the stage relaunches itself under torchrun
on this machine, one process per device: NCCL with one GPU each when CUDA is available (the
machine must have that many GPUs), otherwise gloo with one CPU process each (a test or debug
setting: torchrun gives each process one OpenMP thread). `pretrain.batch_size` is per
process, as in the paper (128 per GPU on 4 GPUs). Several machines: start the stage under
torchrun on each yourself (e.g. `torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d
--rdzv-endpoint=HOST:29500 stages/pretrain.py`); a process started by torchrun never relaunches,
and `work/` must be on a file system every machine shares (rank 0 writes the checkpoint, all
ranks read it to resume).
"""

import csv
import os
import subprocess
import sys
from dataclasses import asdict

from _common import FEATURES, MODELS, RAW, REPORTS, ROOT, WORK, device, logger, params  # first: before torch
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from s3t.allocator import keep_freed_memory
from s3t.model import ModelConfig
from s3t.modelcard import model_card
from s3t.manifest import dataset_recordings
from s3t.shards import audio_hours, clip_recordings, median_clip_seconds, pretraining_clips
from s3t.recipe import configs_from_params
from s3t.train import PretrainConfig, pretrain, record_provenance, run_key


def configs() -> tuple[ModelConfig, PretrainConfig, dict]:
    # The same function builds `s3t pretrain --recipe`'s model (s3t.recipe), so both train the same model.
    return configs_from_params(dict(zip(KEYS, params(*KEYS))))


KEYS = ("cqt", "preprocessor", "backbone", "augment", "pretrain", "embed", "seed")


def main() -> None:
    model, config, section = configs()
    devices = int(section["devices"])
    if devices < 1:
        raise SystemExit(f"pretrain.devices must be >= 1, got {devices}")
    if devices > 1 and "LOCAL_RANK" not in os.environ:
        if torch.cuda.is_available() and torch.cuda.device_count() < devices:
            raise SystemExit(
                f"pretrain.devices is {devices} but this machine has {torch.cuda.device_count()} GPUs; "
                "lower it, or start the stage under torchrun on several machines (see the module docstring)"
            )
        # The venv's own torchrun (no reliance on PATH); --standalone picks a free local rendezvous
        # port, so two runs on one machine do not collide on torchrun's default 29500.
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}"]
        sys.exit(subprocess.call([*launch, __file__]))
    if "LOCAL_RANK" in os.environ:
        if torch.cuda.is_available():
            # Bind the GPU before the process group, so NCCL's communicator lives on this rank's device.
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    dev = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else device()
    log = logger("pretrain" if rank == 0 else f"pretrain rank {rank}")
    keep_freed_memory()  # the step's large tensors are reused, not page-faulted in anew (s3t.allocator)

    # Pre-training never sees the test split of a labeled dataset (memory-mapped, not loaded).
    # `unlabeled` in pretrain.splits adds the dataset's pre-training-only store (the soundtracks' pieces
    # of every track outside the task's test split). The data's digest is in the run's key: a finished
    # run on other clips is never resumed.
    clips, data_digest = pretraining_clips(FEATURES / section["dataset"], section["splits"])
    groups = None
    if config.needs_recordings:
        # Which recording each clip was cut from: the dataset folder's tables with a `track` column.
        groups = clip_recordings(clips, dataset_recordings(RAW / section["dataset"]), root=ROOT)
    resolved = {"model": model.to_dict(), "pretrain": asdict(config), "data": section, "clips": data_digest}
    if groups is not None:
        resolved["recordings"] = groups  # another pairing of the same clips is another run
    key = run_key(resolved, __file__, ROOT / "stages" / "_common.py")[:16]
    work = WORK / "pretrain" / key
    if rank == 0:
        log.info("%d clips%s, %s, checkpoint in %s", len(clips),
                 f" of {len(set(groups))} recordings" if groups is not None else "", model.backbone, work)
    steps = config.epochs * (len(clips) // (config.batch_size * (dist.get_world_size() if dist.is_initialized() else 1)))
    with tqdm(total=steps, desc="pretrain", unit="step", disable=rank != 0, file=sys.stderr) as bar:
        def on_step(s):
            bar.n = s["step"]
            bar.set_postfix(loss=f"{s['loss']:.3f}", lr=f"{s['lr']:.2e}", samples_s=f"{s['samples_per_s']:.0f}")
            bar.refresh()

        history = pretrain(clips, model, config, work / "checkpoint.pt", groups=groups, resume=True, device=dev,
                           on_step=on_step)
    if rank == 0:
        MODELS.mkdir(exist_ok=True)
        # The released checkpoint also says what it was trained on and with which software (the model card's facts).
        state = record_provenance(work / "checkpoint.pt", MODELS / "pretrained.pt", {
            "dataset": section["dataset"], "splits": list(section["splits"]), "clips": len(clips), "hours": audio_hours(clips),
            "clip_seconds": median_clip_seconds(clips)})
        tmp = MODELS / "pretrained.md.tmp"
        tmp.write_text(model_card(state, name="models/pretrained.pt"), encoding="utf-8")
        os.replace(tmp, MODELS / "pretrained.md")
        out = REPORTS / "pretrain"
        out.mkdir(parents=True, exist_ok=True)
        with (out / "history.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        log.info("final loss %.4f after %d epochs", history[-1]["loss"], len(history))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
