"""Pre-training throughput: samples/s of a full S3T step vs the bare backbone, same batch, same run.

A full step is what `s3t.train.pretrain` does per batch: standardise, music augmentation
(two views), pre-processor, MoCo v2 (query forward + backward, momentum update, key forward,
queue), AdamW. The reference is the backbone alone (forward + backward + AdamW on one view),
so the ratio shows what augmentation, the key encoder and the queue cost on top.

FLOPs per sample are counted with torch.utils.flop_counter over one full step. Model FLOP
utilisation (MFU) divides achieved FLOP/s by a stated peak: on CUDA the dense bf16 peak of
the detected GPU (H100 SXM: 989 TFLOP/s, H200: 989 TFLOP/s; other GPUs: pass --peak-tflops);
on CPU no peak is assumed unless --peak-tflops is given.

    python bench/bench_pretrain.py --backbone swin_cpu --batch-size 32
    python bench/bench_pretrain.py --backbone swin_t --batch-size 128 --device cuda --compile
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from s3t.augment import MusicAugment
from s3t.model import ModelConfig, standardize
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
    opt_moco = torch.optim.AdamW([p for p in moco.parameters() if p.requires_grad], lr=1e-4, fused=device.type == "cuda")
    opt_ref = torch.optim.AdamW(backbone.parameters(), lr=1e-4, fused=device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch_size, model.cqt.n_bins, args.clip_frames, device=device)
    lengths = torch.full((args.batch_size,), args.clip_frames, device=device)
    ref_input = pre(augment(standardize(x, lengths), lengths, generator=g)[0])

    def s3t_step() -> None:
        x_q, x_k, _ = augment(standardize(x, lengths), lengths, generator=g)
        with amp:
            logits, labels = moco(pre(x_q), pre(x_k))
            loss = info_nce(logits.float(), labels)
        opt_moco.zero_grad(set_to_none=True)
        loss.backward()
        opt_moco.step()

    def reference_step() -> None:
        with amp:
            loss = backbone(ref_input).float().pow(2).mean()
        opt_ref.zero_grad(set_to_none=True)
        loss.backward()
        opt_ref.step()

    def timed(step) -> float:
        for _ in range(2):  # warm-up (and compilation)
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return args.steps * args.batch_size / (time.perf_counter() - tic)

    with FlopCounterMode(display=False) as counter:
        s3t_step()
    flops_per_sample = counter.get_total_flops() / args.batch_size
    ours, reference = timed(s3t_step), timed(reference_step)

    print(f"machine      {machine(device)}")
    print(f"workload     {args.backbone}, {args.preprocessor}, batch {args.batch_size}, clip {args.clip_frames} frames, {args.steps} timed steps")
    print(f"S3T step     {ours:10.1f} samples/s   ({flops_per_sample / 1e9:.2f} GFLOP per sample, counted)")
    print(f"backbone     {reference:10.1f} samples/s   (reference: backbone forward+backward+AdamW only)")
    print(f"ratio        {ours / reference:10.2f}x of the reference")
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
