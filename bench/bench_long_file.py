"""Peak memory of `s3t embed --audio` on one long file against one short file (issue 32: a 59-minute file within
the memory of a 30-second one, under 2 GB).

Writes a 30-second and a 59-minute 44.1 kHz stereo 16-bit WAV of music-like tones into a temporary folder, runs
`s3t embed --checkpoint C --audio DIR --out OUT.npy` on each in its own process, and prints each run's peak resident
memory (the child's ru_maxrss) and wall time, their ratio, and the machine. Nothing else should run meanwhile.

    python bench/bench_long_file.py [--checkpoint models/pretrained.pt] [--minutes 59]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44100


def write_music(path: Path, seconds: float) -> None:
    """A new two-note chord every second over a little noise, written a minute at a time (bounded memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as fh:
        for start in range(0, int(seconds), 60):
            n = int(min(60, seconds - start) * RATE)
            t = np.arange(n) / RATE
            notes = 110 * 2 ** (rng.integers(0, 36, (n // RATE + 1, 2)) / 12)
            f = np.repeat(notes, RATE, axis=0)[:n]  # (n, 2)
            y = 0.2 * np.sin(2 * np.pi * f * t[:, None]) + 0.005 * rng.standard_normal((n, 2))
            fh.write(y.astype(np.float32))


def peak_of(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a child process."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        os.execvp(command[0], command)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench_long_file: {' '.join(command)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="models/pretrained.pt")
    parser.add_argument("--minutes", type=float, default=59.0)
    args = parser.parse_args()
    s3t = str(Path(sys.executable).with_name("s3t"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds in (("short", 30.0), ("long", args.minutes * 60)):
            folder = Path(tmp, name)
            folder.mkdir()
            write_music(folder / f"{name}.wav", seconds)
            peak, wall = peak_of([s3t, "embed", "--checkpoint", args.checkpoint, "--audio", str(folder),
                                  "--out", str(Path(tmp, f"{name}.npy"))])
            rows.append((name, seconds, peak, wall))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("| file | seconds of audio | peak RSS MB | wall s |")
    print("|---|---|---|---|")
    for name, seconds, peak, wall in rows:
        print(f"| {name} | {seconds:.0f} | {peak:.0f} | {wall:.1f} |")
    print(f"long / short peak RSS: {rows[1][2] / rows[0][2]:.2f}x (target: about 1x, and under 2048 MB)")


if __name__ == "__main__":
    main()
