"""Pre-training throughput: samples/s of a full S3T step vs the bare backbone, same batch, same run.

Two recipes, each built as the pipeline builds it:

* ``default``: the recipe `make run` pre-trains, composed from params.yaml exactly as
  ``stages/pretrain.py`` reads it (backbone and its arguments, pre-processor, MoCo's K, m, T and
  head, the head's pooling, the augmentation, the batch size, bf16 and compile switches).
* ``swin_t``: the paper's Swin-T (Section 3.2: 256 x 256 time folding, window 8, K 65,536, its
  four augmentations at their published probabilities); batch 128 on a GPU, 8 on a CPU unless
  ``--batch-size``.

A full step is what :func:`s3t.train.pretrain` does per batch: clip moments, two augmented views
(standardised after cropping), pre-processor, MoCo v2 (query forward + backward, momentum update,
key forward, queue) under the step's autocast (:func:`s3t.train.autocast`), gradient clipping,
AdamW. Two references on the same batch, timed interleaved with it step by step (so a change in
the machine's load hits all three alike; median step time):

* "backbone, MoCo's share": the bare backbone doing the network work a MoCo step cannot avoid,
  forward + backward of one view, forward without gradient of the other, AdamW, on views made
  before timing. The ratio to it is what augmentation, heads, queue and bookkeeping cost.
* "backbone, one view": forward + backward + AdamW on one view.

FLOPs per sample are counted with torch.utils.flop_counter over one full step. Model FLOP
utilisation (MFU) divides achieved FLOP/s by a stated peak: on CUDA the dense bf16 peak of the
detected GPU (H100 SXM and H200: 989 TFLOP/s); elsewhere only with ``--peak-tflops``.

Like the training entry points, the run sets the OpenMP wait policy before torch loads
(:mod:`s3t.threads`) and has glibc keep freed memory (:mod:`s3t.allocator`); ``--allocator
system`` leaves the C library's defaults. The machine line names the CPU's vector units, torch's
kernel level and the wait policy in effect.

With ``--max-batch N`` the run then doubles the batch (from twice ``--batch-size``) while it fits,
up to N, and reports the largest that ran (the S3T step alone).

    python bench/bench_pretrain.py                                 both recipes on this machine
    python bench/bench_pretrain.py --recipe default --bf16 force   bfloat16 even where it is emulated
    python bench/bench_pretrain.py --recipe swin_t --device cuda --compile --max-batch 2048
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s3t.threads import openmp_wait_policy, sleep_at_barriers  # noqa: E402

WAITS_PASSIVELY = sleep_at_barriers()  # before torch loads, as in every entry point

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from s3t.allocator import keep_freed_memory  # noqa: E402
from s3t.augment import MusicAugment  # noqa: E402
from s3t.model import ModelConfig, clip_moments, standardize  # noqa: E402
from s3t.moco import info_nce  # noqa: E402
from s3t.train import PretrainConfig, autocast, build_moco  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
RECIPES = ("default", "swin_t")


def cpu_flags() -> str:
    """The CPU's vector and matrix units that matter for these kernels, and torch's kernel level."""
    caps = torch.cpu.get_capabilities()
    units = [u for u in ("avx2", "fma3", "avx512_f", "avx512_bf16", "amx_bf16") if caps.get(u)]
    return f"{' '.join(units) or 'none of avx2/avx512/amx'}; torch kernels {torch.backends.cpu.get_cpu_capability()}"


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return (f"{platform.platform()} | CPU {cpu}, {os.cpu_count()} cores ({cpu_flags()}) | torch threads "
            f"{torch.get_num_threads()}, OpenMP wait {openmp_wait_policy()} | GPU {gpu} | torch {torch.__version__}")


def recipe(name: str, args: argparse.Namespace, device: torch.device) -> tuple[ModelConfig, PretrainConfig]:
    """The model and pre-training settings of recipe ``name``, with this run's overrides."""
    if name == "default":
        # The composition stages/pretrain.py runs (it reads params.yaml through stages/_common.py);
        # imported here, so the Swin-T run needs neither PyYAML nor the pipeline's libraries.
        sys.path.insert(0, str(ROOT / "stages"))
        from pretrain import configs

        model, config, _ = configs()
    else:
        model = ModelConfig()  # Swin-T, time folding, 256 x 256
        config = PretrainConfig(batch_size=128 if device.type == "cuda" else 8)
    bf16 = {"auto": config.bf16, "off": False, "force": True}[args.bf16]
    config = replace(config, bf16=bf16, compile=args.compile or config.compile)
    return model, at_batch(config, args.batch_size or config.batch_size)


def at_batch(config: PretrainConfig, batch: int) -> PretrainConfig:
    """``config`` at batch ``batch``; MoCo needs K a multiple of the batch: the smallest such K at least the recipe's."""
    return replace(config, batch_size=batch, K=-(-config.K // batch) * batch)


def measure(model: ModelConfig, config: PretrainConfig, args: argparse.Namespace, device: torch.device,
            references: bool = True) -> tuple[dict[str, float], float]:
    """Samples/s of the S3T step (and, with ``references``, of the two backbone references), and
    the step's counted FLOPs per sample. Builds everything afresh, so a call that runs out of
    memory leaves nothing behind once its frame is gone."""
    batch_size = config.batch_size
    moco = build_moco(model, config).to(device)  # seeds torch with config.seed, as pretrain does
    if config.compile:
        moco._project = torch.compile(moco._project)  # as s3t.train.pretrain compiles
    pre = model.build_preprocessor().to(device)
    augment = MusicAugment(out_frames=pre.frames, **config.augment).to(device)
    backbone = model.build_backbone().to(device) if references else None
    if backbone is not None and config.compile:
        backbone.compile()
    trainable = [p for p in moco.parameters() if p.requires_grad]
    opt_moco = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    # --bf16 force asks for bfloat16 where s3t.train would not use it (emulated on this CPU).
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 == "force"
           else autocast(device, config.bf16))
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
        torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
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


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of one n x n x n matrix product on ``device``: what the dense units give a large,
    square product, the ceiling a step made of smaller products and element-wise work stays under."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return repeats * 2 * n**3 / (time.perf_counter() - tic) / 1e9


def peak_tflops(args: argparse.Namespace, device: torch.device) -> float | None:
    if args.peak_tflops is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return args.peak_tflops


def describe(name: str, model: ModelConfig, config: PretrainConfig, amp_on: bool) -> str:
    kwargs = ", ".join(f"{k} {v}" for k, v in model.backbone_kwargs.items())
    return (f"{name}: {model.backbone}{f' ({kwargs})' if kwargs else ''}, {model.preprocessor} {model.input_size}, "
            f"head on {config.head_pooling}, K {config.K}, batch {config.batch_size}, "
            f"{'bf16 autocast' if amp_on else 'float32'}, {'compiled' if config.compile else 'eager'}")


def largest_batch(model: ModelConfig, config: PretrainConfig, args: argparse.Namespace, device: torch.device,
                  peak: float | None) -> None:
    """Double the batch from 2 x the recipe's up to --max-batch until one runs out of memory."""
    print(f"batch search {2 * config.batch_size} .. {args.max_batch}, doubling; S3T step only")
    largest = None
    batch_size = 2 * config.batch_size
    while batch_size <= args.max_batch:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            rate, flops_per_sample = measure(model, at_batch(config, batch_size), args, device, references=False)
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
        print(f"largest batch {config.batch_size} (no larger batch ran)")
    else:
        print(f"largest batch {largest[0]} that ran: {largest[1]:.1f} samples/s, {largest[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", nargs="+", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--batch-size", type=int, default=None, help="instead of the recipe's")
    parser.add_argument("--clip-frames", type=int, default=1292, help="frames per clip (30 s at hop 512)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoders even where the recipe does not")
    parser.add_argument("--bf16", choices=("auto", "off", "force"), default="auto",
                        help="auto: as training (the recipe's switch, where the device has bfloat16 units); "
                        "off: float32; force: bfloat16 autocast even where it is emulated")
    parser.add_argument("--no-references", action="store_true", help="time the S3T step alone")
    parser.add_argument("--allocator", choices=("keep", "system"), default="keep",
                        help="keep: glibc keeps freed memory for the next step, as training does "
                        "(s3t.allocator); system: the C library's defaults")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--max-batch", type=int, default=None,
                        help="after the run, double the batch up to this while it fits in memory")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the S3T steps' samples/s")
    args = parser.parse_args()
    device = torch.device(args.device)
    kept = args.allocator == "keep" and keep_freed_memory()
    peak = peak_tflops(args, device)

    print(f"machine      {machine(device)}")
    print(f"workload     clip {args.clip_frames} frames, {args.steps} timed steps, allocator: "
          f"{'keeps freed memory' if kept else 'system defaults'}")
    results = {}
    for name in args.recipe:
        model, config = recipe(name, args, device)
        amp_on = args.bf16 == "force" or autocast(device, config.bf16)._enabled
        rate, flops_per_sample = measure(model, config, args, device, references=not args.no_references)
        ours = rate["S3T step"]
        results[name] = ours
        print(f"recipe       {describe(name, model, config, amp_on)}")
        print(f"S3T step                {ours:10.1f} samples/s   ({flops_per_sample / 1e9:.2f} GFLOP per sample, counted)")
        for ref in ("backbone, MoCo's share", "backbone, one view"):
            if ref in rate:
                print(f"{ref:23s} {rate[ref]:10.1f} samples/s   S3T step = {ours / rate[ref]:.2f}x of it")
        if peak:
            print(f"MFU          {100 * ours * flops_per_sample / (peak * 1e12):10.2f} % of {peak:.0f} TFLOP/s")
        else:
            print("MFU          not computed (no stated peak for this device; pass --peak-tflops)")
        if device.type == "cpu":
            achieved, square = ours * flops_per_sample / 1e9, matmul_gflops(device)
            print(f"ceiling      the step computes {achieved:.1f} GFLOP/s; one float32 2048^3 matrix product here {square:.1f} "
                  f"GFLOP/s ({100 * achieved / square:.0f} %): at that rate throughout, the step would run "
                  f"{square * 1e9 / flops_per_sample:.1f} samples/s")
        if args.max_batch is not None:
            largest_batch(model, config, args, device, peak)
    print(f"load average            {os.getloadavg()[0]:.2f} (1 min, after the run)")
    if args.json:
        print(json.dumps({"samples_per_s": results, "wait_policy": openmp_wait_policy(),
                          "passive": WAITS_PASSIVELY, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
