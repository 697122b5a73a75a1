"""Featurization throughput of s3t.shards.featurize_to_shards: clips/s and audio-seconds/s.

Writes ``--clips`` music-like clips of ``--seconds`` each as 16-bit stereo 44.1 kHz WAV (so
decoding includes the mix to mono and the 2:1 resampling to 22.05 kHz), then featurizes them
into fresh shards once per ``--workers`` value with the paper's CQT (84 bins, hop 512, 100x
time compression). Each run starts cold: worker start-up is part of its wall time.

The time split comes from the run's summary: ``decode`` is the decoding time summed over
whichever processes decoded (with workers it runs in parallel with the rest), ``wait`` the
time the main process spent waiting for decoded audio, ``cqt`` the batched transform
(including the host-device copy), ``write`` the shard files.

    python bench/bench_featurize.py [--clips 64] [--seconds 30] [--workers 0 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from s3t.threads import openmp_wait_policy, sleep_at_barriers

sleep_at_barriers()  # before torch loads, as in every entry point (s3t.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_cqt import SR, cpu_model, music_like_clips
from scipy.signal import resample_poly

from s3t.cqt import CQTConfig
from s3t.shards import ClipSource, featurize_to_shards


def write_clips(folder: Path, clips: int, seconds: float) -> list[ClipSource]:
    import soundfile

    sources = []
    for i, y in enumerate(music_like_clips(clips, seconds)):
        stereo = np.stack([y, 0.8 * y], axis=1)  # (n, 2)
        path = folder / f"clip{i:04d}.wav"
        soundfile.write(path, resample_poly(stereo, 2, 1, axis=0), 2 * SR, subtype="PCM_16")
        sources.append(ClipSource(path.stem, str(path), "bench"))
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clips-per-shard", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"platform      {platform.platform()}")
    print(f"cpu           {cpu_model()} (os.cpu_count={os.cpu_count()}, {torch.get_num_threads()} torch threads, OpenMP wait {openmp_wait_policy()})")
    print(f"gpu           {gpu}; CQT on {args.device}")
    print(f"versions      torch {torch.__version__}, numpy {np.__version__}")
    cfg = CQTConfig(time_compression=100)
    with tempfile.TemporaryDirectory(prefix="bench_featurize_") as tmp:
        t0 = time.perf_counter()
        audio = Path(tmp, "audio")
        audio.mkdir()
        sources = write_clips(audio, args.clips, args.seconds)
        size_mb = sum(Path(s.path).stat().st_size for s in sources) / 2**20
        print(
            f"workload      {args.clips} clips x {args.seconds:g} s, WAV 16-bit stereo 44.1 kHz ({size_mb:.0f} MB, "
            f"written in {time.perf_counter() - t0:.1f} s); batch {args.batch_size}, "
            f"{args.clips_per_shard} clips/shard, CQT {cfg.n_bins} bins, hop {cfg.hop_length}, "
            f"compression {cfg.time_compression}"
        )
        header = (
            f"{'workers':>7s} {'wall s':>7s} {'clips/s':>8s} {'audio s/s':>10s} "
            f"{'decode s':>9s} {'wait s':>7s} {'cqt s':>7s} {'write s':>8s}"
        )
        print(header)
        for workers in args.workers:
            s = featurize_to_shards(
                sources, Path(tmp, f"out-w{workers}"), cfg, clips_per_shard=args.clips_per_shard,
                workers=workers, batch_size=args.batch_size, device=args.device,
            )
            if s["clips"] != args.clips:
                raise RuntimeError(f"expected {args.clips} clips, got a summary of {s}")
            print(
                f"{workers:7d} {s['wall_s']:7.2f} {s['clips'] / s['wall_s']:8.2f} "
                f"{s['audio_seconds'] / s['wall_s']:10.0f} {s['decode_s']:9.2f} {s['decode_wait_s']:7.2f} "
                f"{s['cqt_s']:7.2f} {s['write_s']:8.3f}"
            )


if __name__ == "__main__":
    main()
