"""Means over seeds of `bench/recipe_ablation.py`'s `(folds)` rows, each setting paired by seed with
the default's rows (the rows with no override but `seed=N`) from the same file.

    python bench/fold_means.py reports/ablation/recipe_folds.md

Reads every line `| seed=N OVERRIDES (folds) | S3T | Random-Init | hand-crafted | ...` (linear / k-NN
top-1 in %); a setting run more than once for a seed keeps its last row. Prints one row per setting:
its seeds, the means of S3T, Random-Init and the hand-crafted statistics, the default's S3T mean on the
same seeds, and S3T's paired differences from the default, seed by seed and on the mean. A setting
with a seed the default lacks is printed without the comparison. The means are of the printed
(one-decimal) scores, so they can differ by 0.1 from `bench/cv_score.py`'s means of the same runs.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

ROW = re.compile(r"^\| seed=(\d+)(.*?) \(folds\) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|")


def read_rows(path: Path) -> dict[str, dict[int, tuple[float, ...]]]:
    """Setting (its overrides, "" for the default) -> seed -> the six scores of its last row."""
    rows: dict[str, dict[int, tuple[float, ...]]] = {}
    for line in path.read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            rows.setdefault(match[2].strip(), {})[int(match[1])] = tuple(float(match[i]) for i in range(3, 9))
    return rows


def mean(table: dict[int, tuple[float, ...]], seeds: list[int], j: int) -> float:
    """Mean over ``seeds`` of score ``j`` (0, 1: S3T linear, k-NN; 2, 3: Random-Init; 4, 5: hand-crafted)."""
    return statistics.mean(table[s][j] for s in seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="a file holding recipe_ablation.py's printed rows")
    args = parser.parse_args()
    rows = read_rows(args.log)
    if not rows:
        raise SystemExit(f'no "| seed=N ... (folds) |" rows in {args.log}: pass a file holding bench/recipe_ablation.py\'s printed rows')
    default = rows.get("", {})
    print("| setting | seeds | S3T | Random-Init | hand-crafted | default's S3T, same seeds | S3T - default (paired) |")
    print("|---|---|---|---|---|---|---|")
    for setting, by_seed in rows.items():
        seeds = sorted(by_seed)
        cells = " | ".join(f"{mean(by_seed, seeds, j):.1f} / {mean(by_seed, seeds, j + 1):.1f}" for j in (0, 2, 4))
        if setting and all(s in default for s in seeds):
            paired = [by_seed[s][0] - default[s][0] for s in seeds]
            compare = (f"{mean(default, seeds, 0):.1f} / {mean(default, seeds, 1):.1f} | {statistics.mean(paired):+.1f} "
                       f"({', '.join(f'{d:+.1f}' for d in paired)})")
        else:
            compare = " | "
        print(f"| {setting or '(the default)'} | {', '.join(map(str, seeds))} | {cells} | {compare} |")


if __name__ == "__main__":
    main()
