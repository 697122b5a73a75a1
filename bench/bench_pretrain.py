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

    python bench/bench_pretrain.py --backbone swin_cpu --batch-size 32
    python bench/bench_pretrain.py --backbone swin_t --batch-size 128 --device cuda --compile
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="swin_cpu")
    parser.add_argument("--preprocessor", default="time_folding")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--clip-frames", type=int, default=1292, help="frames per clip (30 s at hop 512)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    model = ModelConfig(backbone=args.backbone, preprocessor=args.preprocessor)
    pre = model.build_preprocessor().to(device)
    augment = MusicAugment(out_frames=pre.frames).to(device)
    moco = MoCo(model.build_backbone, K=args.batch_size * 8, m=0.999, batch_size=args.batch_size).to(device)
    backbone = model.build_backbone().to(device)
    if args.compile:
        for module in (moco.encoder_q, moco.encoder_k, backbone):
            module.compile()
    trainable = [p for p in moco.parameters() if p.requires_grad]
    opt_moco = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    opt_ref = torch.optim.AdamW(backbone.parameters(), lr=1e-4, fused=device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    g = torch.Generator(device=device).manual_seed(0)
    # (B, F, T) in the frames-major layout that s3t.train's collate gives (pad_batch).
    x = torch.randn(args.batch_size, args.clip_frames, model.cqt.n_bins, device=device).transpose(1, 2)
    lengths = torch.full((args.batch_size,), args.clip_frames, device=device)
    views = augment(standardize(x, lengths), lengths, generator=g)
    ref_q, ref_k = pre(views[0]), pre(views[1])

    def s3t_step() -> None:
        x_q, x_k, _ = augment(x, lengths, g, moments=clip_moments(x, lengths))
        with amp:
            logits, labels = moco(pre(x_q), pre(x_k))
            loss = info_nce(logits.float(), labels)
        opt_moco.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        opt_moco.step()

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

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    steps = {"S3T step": s3t_step, "backbone, MoCo's share": share_step, "backbone, one view": one_view_step}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.steps + 2):  # two warm-up rounds (and compilation)
        for name, step in steps.items():
            sync()
            tic = time.perf_counter()
            step()
            sync()
            if round_ >= 2:
                times[name].append(time.perf_counter() - tic)
    rate = {name: args.batch_size / statistics.median(t) for name, t in times.items()}

    with FlopCounterMode(display=False) as counter:
        s3t_step()
    flops_per_sample = counter.get_total_flops() / args.batch_size
    ours = rate["S3T step"]
    load = os.getloadavg()[0]

    print(f"machine      {machine(device)}")
    print(f"workload     {args.backbone}, {args.preprocessor}, batch {args.batch_size}, clip {args.clip_frames} frames, {args.steps} timed steps")
    print(f"S3T step                {ours:10.1f} samples/s   ({flops_per_sample / 1e9:.2f} GFLOP per sample, counted)")
    for name in ("backbone, MoCo's share", "backbone, one view"):
        print(f"{name:23s} {rate[name]:10.1f} samples/s   S3T step = {ours / rate[name]:.2f}x of it")
    print(f"load average            {load:.2f} (1 min, after the run)")
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    if peak:
        print(f"MFU          {100 * ours * flops_per_sample / (peak * 1e12):10.2f} % of {peak:.0f} TFLOP/s")
    else:
        print("MFU          not computed (no stated peak for this device; pass --peak-tflops)")


if __name__ == "__main__":
    main()
