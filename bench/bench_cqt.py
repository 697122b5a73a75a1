"""CQT throughput: s3t.cqt.CQT (multi-rate, batched) vs librosa.cqt on the same clips.

Throughput is seconds of audio transformed per wall-clock second (higher is better), the
median over ``--repeats`` timed runs after one untimed warm-up, the methods interleaved run
by run so that a change in the machine's load hits them alike. nnAudio's ``CQT1992v2`` (our
front end until the multi-rate one) is a second reference row. All compute the
paper's transform (22.05 kHz, 84 bins from C1, 12 bins/octave, hop 512, Hann): ours returns
log-magnitude, librosa complex values; the extra log/abs is negligible next to the
transform. GPU timings use clips already on the device (transfer excluded) and synchronise
before stopping the clock.

    python bench/bench_cqt.py [--clips 8] [--seconds 30] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

from s3t.threads import openmp_wait_policy, sleep_at_barriers

sleep_at_barriers()  # before torch loads, as in every entry point (s3t.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from s3t.cqt import CQT

SR = 22050


def music_like_clips(clips: int, seconds: float, seed: int = 0) -> np.ndarray:
    """``(clips, seconds * SR)`` float32: a new triad every 0.5 s, each note with 5 decaying
    harmonics and a plucked envelope, over a quiet noise floor; peak about 0.9."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    note_len = SR // 2
    t = np.arange(note_len) / SR
    envelope = np.exp(-3.0 * t) * np.minimum(1.0, t / 0.01)
    out = np.empty((clips, n), dtype=np.float32)
    for c in range(clips):
        y = 0.01 * rng.standard_normal(n)
        for start in range(0, n, note_len):
            root = rng.integers(36, 72)  # MIDI C2..B4
            seg = np.zeros(note_len)
            for midi in (root, root + 4, root + 7):
                f0 = 440.0 * 2 ** ((midi - 69) / 12)
                for h in range(1, 6):
                    if h * f0 < SR / 2:
                        seg += np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) / h
            stop = min(start + note_len, n)
            y[start:stop] += (seg * envelope)[: stop - start]
        out[c] = 0.9 * y / np.abs(y).max()
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed_interleaved(fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median wall-clock seconds of each function over ``repeats`` rounds (one call of each per
    round, in turn), after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import librosa
    import nnAudio
    from nnAudio.features.cqt import CQT1992v2

    clips = music_like_clips(args.clips, args.seconds)
    audio_seconds = args.clips * args.seconds
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"platform      {platform.platform()}")
    threads = f"{torch.get_num_threads()} torch threads (OpenMP wait {openmp_wait_policy()}), os.cpu_count={os.cpu_count()}"
    print(f"cpu           {cpu_model()} ({threads})")
    print(f"gpu           {gpu}")
    print(
        f"versions      torch {torch.__version__}, nnAudio {nnAudio.__version__}, "
        f"librosa {librosa.__version__}, numpy {np.__version__}"
    )
    print(
        f"workload      {args.clips} clips x {args.seconds:g} s = {audio_seconds:g} s of audio, "
        f"median of {args.repeats} runs"
    )

    def run_librosa() -> None:
        for y in clips:
            librosa.cqt(y, sr=SR, hop_length=512, fmin=32.70, n_bins=84, bins_per_octave=12, window="hann")

    former = CQT1992v2(
        sr=SR, hop_length=512, fmin=32.70, n_bins=84, bins_per_octave=12, window="hann",
        center=True, pad_mode="constant", output_format="Magnitude", verbose=False,
    )
    module = CQT()
    batch = torch.from_numpy(clips)
    fns: dict[str, Callable[[], object]] = {
        "librosa.cqt (CPU, clip by clip)": run_librosa,
        "nnAudio CQT1992v2 (CPU, batched)": lambda: former(batch),
        "s3t CQT (CPU, batched)": lambda: module(batch),
    }
    load_before = os.getloadavg()
    with torch.inference_mode():
        results = timed_interleaved(fns, args.repeats, sync=lambda: None)
        if torch.cuda.is_available():
            module_gpu = CQT().to("cuda")
            batch_gpu = batch.to("cuda")
            results |= timed_interleaved(
                {"s3t CQT (CUDA, batched)": lambda: module_gpu(batch_gpu)}, args.repeats, torch.cuda.synchronize
            )
    load_after = os.getloadavg()

    reference = audio_seconds / results["librosa.cqt (CPU, clip by clip)"]
    print(f"{'method':34s} {'wall s':>8s} {'audio s / s':>12s} {'vs librosa':>11s}")
    for name, seconds in results.items():
        throughput = audio_seconds / seconds
        print(f"{name:34s} {seconds:8.3f} {throughput:12.0f} {throughput / reference:10.2f}x")
    print(f"load average  {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    with torch.inference_mode():
        a, b = former(batch), module.magnitude(batch)  # linear magnitudes, (clips, 84, frames)
    relative = (a - b).abs() / a.clamp_min(1e-3 * float(a.max()))
    corr = float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])
    print(f"agreement     ours vs nnAudio CQT1992v2: correlation {corr:.6f}, median relative difference "
          f"{100 * float(relative.median()):.2f} % (cells above 1e-3 of the peak as floor)")


if __name__ == "__main__":
    main()
