"""Pair two sets of `bench/cv_score.py` results by checkpoint: how a scoring change (segments per
clip, say) moves S3T and its margin over Random-Init on the same checkpoints.

    python bench/cv_compare.py reports/ablation/cv_scores.md reports/ablation/cv_segments.md

Each file is read for the per-checkpoint rows `cv_score.py` prints (`| NAME (seed N) | S3T | Random-Init |
hand-crafted |`, linear / k-NN in %); a checkpoint that appears more than once in a file keeps its first
row. Prints, for every checkpoint in both files, S3T's linear top-1 before and after and its margin over
Random-Init before and after, then the mean change over all of them and how many rose.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

ROW = re.compile(r"^\| (\S+) \(seed \d+\) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|$")


def read_rows(path: Path) -> dict[str, tuple[float, float]]:
    """Checkpoint name -> (S3T linear top-1, Random-Init linear top-1), first row of each name."""
    rows: dict[str, tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            rows.setdefault(match[1], (float(match[2]), float(match[4])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = read_rows(args.before), read_rows(args.after)
    shared = [name for name in after if name in before]
    if not shared:
        raise SystemExit(f"no checkpoint appears in both {args.before} and {args.after}: pass two files holding "
                         "bench/cv_score.py's per-checkpoint rows of the same checkpoints")
    print("| checkpoint | S3T before | S3T after | change | margin over Random-Init before | after |\n|---|---|---|---|---|---|")
    changes, margins = [], []
    for name in shared:
        (s0, r0), (s1, r1) = before[name], after[name]
        changes.append(s1 - s0)
        margins.append((s1 - r1) - (s0 - r0))
        print(f"| {name} | {s0:.1f} | {s1:.1f} | {s1 - s0:+.1f} | {s0 - r0:+.1f} | {s1 - r1:+.1f} |")
    print(f"\n{len(shared)} checkpoints: S3T {statistics.mean(changes):+.2f} points on the mean "
          f"({sum(c > 0 for c in changes)} rose, {sum(c < 0 for c in changes)} fell), "
          f"its margin over Random-Init {statistics.mean(margins):+.2f}")


if __name__ == "__main__":
    main()
