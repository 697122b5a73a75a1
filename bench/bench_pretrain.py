"""Pre-training throughput: samples/s of a full S3T step vs the bare backbone, same batch, same run.

A full step is what `s3t.train.pretrain` does per batch: clip moments, music augmentation
(two views, standardised after cropping), pre-processor, MoCo v2 (query forward + backward,
momentum update, key forward, queue), gradient clipping, AdamW. Two references on the same
batch, timed interleaved with it step by step (so a change in the machine's load hits all
three alike; median step time):

* "backbone, MoCo's share": the bare backbone doing the network work a MoCo step cannot
  avoid, forward + backward of one view, forward without gradient of the other, AdamW, on
  views made before timing. The ratio to it is what augmentation, heads, queue, momentum
  update and bookkeeping cost: the issue's "pre-training step >= 0.85x the bare backbone".
* "backbone, one view": forward + backward + AdamW on one view, the reference of the first
  version of this script. A MoCo step also runs the key encoder's forward (about a third of
  a forward + backward), so against it a step can reach at most about 0.75x.

FLOPs per sample are counted with torch.utils.flop_counter over one full step. Model FLOP
utilisation (MFU) divides achieved FLOP/s by a stated peak: on CUDA the dense bf16 peak of
the detected GPU (H100 SXM: 989 TFLOP/s, H200: 989 TFLOP/s; other GPUs: pass --peak-tflops);
on CPU no peak is assumed unless --peak-tflops is given.

The augmentation is the paper's (2.3, all four transforms at their published probabilities)
unless ``--augment params``, which takes params.yaml's ``augment`` section: the step that
``dvc repro`` runs at the default scale.

Like the training entry points, the run first has glibc keep freed memory for the next step
(:mod:`s3t.allocator`); ``--allocator system`` leaves the C library's defaults, to see what
that setting buys.

With ``--max-batch N`` the run then doubles the batch (from twice ``--batch-size``) while it
fits, up to N: a batch that raises CUDA out-of-memory ends the search, and the largest that
ran is reported with its samples/s and MFU (the S3T step alone, without the references).

    python bench/bench_pretrain.py --backbone swin_cpu --batch-size 32
    python bench/bench_pretrain.py --backbone swin_t --batch-size 128 --device cuda --compile
    python bench/bench_pretrain.py --backbone swin_t --batch-size 128 --device cuda --max-batch 2048
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from s3t.allocator import keep_freed_memory
from s3t.augment import MusicAugment
from s3t.model import ModelConfig, clip_moments, standardize
from s3t.moco import MoCo, info_nce

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return f"{platform.platform()} | CPU {cpu} | torch threads {torch.get_num_threads()} | GPU {gpu} | torch {torch.__version__}"


def augment_settings(source: str) -> dict:
    """MusicAugment keyword arguments: {} for the paper's defaults, or params.yaml's ``augment``."""
    if source == "paper":
        return {}
    import yaml  # only here: the GPU check runs the paper's setting where PyYAML may be missing

    with open(Path(__file__).resolve().parent.parent / "params.yaml") as fh:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in yaml.safe_load(fh)["augment"].items()}


def measure(args: argparse.Namespace, batch_size: int, device: torch.device, references: bool = True) -> tuple[dict[str, float], float]:
    """Samples/s of the S3T step (and, with ``references``, of the two backbone references) at
    ``batch_size``, and the step's counted FLOPs per sample. Builds everything afresh, so a call
    that runs out of memory leaves nothing behind once its frame is gone."""
    torch.manual_seed(0)
    model = ModelConfig(backbone=args.backbone, preprocessor=args.preprocessor)
    pre = model.build_preprocessor().to(device)
    augment = MusicAugment(out_frames=pre.frames, **augment_settings(args.augment)).to(device)
    moco = MoCo(model.build_backbone, K=batch_size * 8, m=0.999, batch_size=batch_size).to(device)
    # The references' backbone and views are built only when timed: the batch search measures
    # what the S3T step alone can fit.
    backbone = model.build_backbone().to(device) if references else None
    if args.compile:
        for module in (moco.encoder_q, moco.encoder_k, backbone):
            if module is not None:
                module.compile()
    trainable = [p for p in moco.parameters() if p.requires_grad]
    opt_moco = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    g = torch.Generator(device=device).manual_seed(0)
    # (B, F, T) in the frames-major layout that s3t.train's collate gives (pad_batch).
    x = torch.randn(batch_size, args.clip_frames, model.cqt.n_bins, device=device).transpose(1, 2)
    lengths = torch.full((batch_size,), args.clip_frames, device=device)

    def s3t_step() -> None:
        x_q, x_k, _ = augment(x, lengths, g, moments=clip_moments(x, lengths))
        with amp:
            logits, labels = moco(pre(x_q), pre(x_k))
            loss = info_nce(logits.float(), labels)
        opt_moco.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        opt_moco.step()

    steps = {"S3T step": s3t_step}
    if references:
        opt_ref = torch.optim.AdamW(backbone.parameters(), lr=1e-4, fused=device.type == "cuda")
        views = augment(standardize(x, lengths), lengths, generator=g)
        ref_q, ref_k = pre(views[0]), pre(views[1])

        def share_step() -> None:
            with amp:
                loss = backbone(ref_q).float().pow(2).mean()
                with torch.no_grad():
                    backbone(ref_k)
            opt_ref.zero_grad(set_to_none=True)
            loss.backward()
            opt_ref.step()

        def one_view_step() -> None:
            with amp:
                loss = backbone(ref_q).float().pow(2).mean()
            opt_ref.zero_grad(set_to_none=True)
            loss.backward()
            opt_ref.step()

        steps.update({"backbone, MoCo's share": share_step, "backbone, one view": one_view_step})

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.steps + 2):  # two warm-up rounds (and compilation)
        for name, step in steps.items():
            sync()
            tic = time.perf_counter()
            step()
            sync()
            if round_ >= 2:
                times[name].append(time.perf_counter() - tic)
    rate = {name: batch_size / statistics.median(t) for name, t in times.items()}

    with FlopCounterMode(display=False) as counter:
        s3t_step()
    return rate, counter.get_total_flops() / batch_size


def peak_tflops(args: argparse.Namespace, device: torch.device) -> float | None:
    if args.peak_tflops is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return args.peak_tflops


def largest_batch(args: argparse.Namespace, device: torch.device, peak: float | None) -> None:
    """Double the batch from 2 x --batch-size up to --max-batch until one runs out of memory."""
    print(f"batch search {2 * args.batch_size} .. {args.max_batch}, doubling; S3T step only")
    largest = None
    batch_size = 2 * args.batch_size
    while batch_size <= args.max_batch:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            rate, flops_per_sample = measure(args, batch_size, device, references=False)
        except torch.cuda.OutOfMemoryError:
            # The failed call's tensors die with its frame; collect them, then hand the cached
            # blocks back so the report (and any later run) starts from an empty device.
            gc.collect()
            torch.cuda.empty_cache()
            print(f"batch {batch_size:5d}  out of memory")
            break
        ours = rate["S3T step"]
        memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:6.1f} GiB peak" if device.type == "cuda" else ""
        mfu = f"MFU {100 * ours * flops_per_sample / (peak * 1e12):6.2f} %" if peak else "MFU n/a"
        print(f"batch {batch_size:5d}  {ours:10.1f} samples/s   {mfu}   {memory}")
        largest = (batch_size, ours, mfu)
        batch_size *= 2
    if largest is None:
        print(f"largest batch {args.batch_size} (no larger batch ran)")
    else:
        print(f"largest batch {largest[0]} that ran: {largest[1]:.1f} samples/s, {largest[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="swin_cpu")
    parser.add_argument("--preprocessor", default="time_folding")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--clip-frames", type=int, default=1292, help="frames per clip (30 s at hop 512)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--augment", choices=("paper", "params"), default="paper",
                        help="the paper's augmentation, or params.yaml's (the default recipe's)")
    parser.add_argument("--allocator", choices=("keep", "system"), default="keep",
                        help="keep: glibc keeps freed memory for the next step, as training does "
                        "(s3t.allocator); system: the C library's defaults")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--max-batch", type=int, default=None,
                        help="after the run, double the batch up to this while it fits in memory")
    args = parser.parse_args()
    device = torch.device(args.device)
    kept = args.allocator == "keep" and keep_freed_memory()

    rate, flops_per_sample = measure(args, args.batch_size, device)
    ours = rate["S3T step"]
    load = os.getloadavg()[0]

    print(f"machine      {machine(device)}")
    print(f"workload     {args.backbone}, {args.preprocessor}, batch {args.batch_size}, clip {args.clip_frames} frames, {args.steps} timed steps, augmentation: {args.augment}, "
          f"allocator: {'keeps freed memory' if kept else 'system defaults'}")
    print(f"S3T step                {ours:10.1f} samples/s   ({flops_per_sample / 1e9:.2f} GFLOP per sample, counted)")
    for name in ("backbone, MoCo's share", "backbone, one view"):
        print(f"{name:23s} {rate[name]:10.1f} samples/s   S3T step = {ours / rate[name]:.2f}x of it")
    print(f"load average            {load:.2f} (1 min, after the run)")
    peak = peak_tflops(args, device)
    if peak:
        print(f"MFU          {100 * ours * flops_per_sample / (peak * 1e12):10.2f} % of {peak:.0f} TFLOP/s")
    else:
        print("MFU          not computed (no stated peak for this device; pass --peak-tflops)")
    if args.max_batch is not None:
        largest_batch(args, device, peak)


if __name__ == "__main__":
    main()
