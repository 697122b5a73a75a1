"""Pre-training under a busy machine: the default recipe's step idle and beside one CPU-bound
program of another session, for several OpenMP wait settings, in one run.

Each measurement is a fresh ``bench/bench_pretrain.py --recipe default --no-references`` process
(libgomp reads its settings when torch loads, so a setting needs its own process). The competing
program is a Python busy loop started in a new session (``setsid``): Linux's autogroup scheduler
then gives it half of the machine whatever its ``nice`` level, as a program started from another
terminal gets. The idle runs come first, then the contended ones beside one competitor.

Settings (``--settings``, any of):

* ``spin``: libgomp's default (``GOMP_SPINCOUNT=300000``: a waiting thread polls 300,000 times
  before it sleeps), what the pipeline ran before :mod:`s3t.threads`;
* ``s3t``: no variable set, so the benchmark (like every entry point) sets what :mod:`s3t.threads`
  sets (a short spin, then sleep);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once);
* ``spin=N``: ``GOMP_SPINCOUNT=N``;
* ``threads=N``: ``OMP_NUM_THREADS=N`` with libgomp's default wait.

    python bench/bench_contention.py
    python bench/bench_contention.py --settings spin spin=1000 spin=10000 --steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "bench_pretrain.py"
CONTROLLED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")


def setting_env(setting: str) -> dict[str, str]:
    """The environment variables a setting names (beside the ones it leaves unset)."""
    if setting == "spin":
        return {"GOMP_SPINCOUNT": "300000"}
    if setting == "s3t":
        return {}
    if setting == "passive":
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    name, _, value = setting.partition("=")
    if name == "spin" and value.isdigit():
        return {"GOMP_SPINCOUNT": value}
    if name == "threads" and value.isdigit() and int(value) > 0:
        return {"OMP_NUM_THREADS": value, "GOMP_SPINCOUNT": "300000"}
    raise argparse.ArgumentTypeError(f"unknown setting {setting!r}: use spin, s3t, passive, spin=N or threads=N")


def run_step(setting: str, steps: int, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update(setting_env(setting))
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--recipe", "default", "--no-references", "--steps", str(steps), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench_pretrain.py failed under {setting}:\n{proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    result["machine"] = next((line for line in lines if line.startswith("machine")), "")
    return result


def autogroup() -> str:
    try:
        return "on" if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1" else "off"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["spin", "s3t", "passive", "threads=1"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (after 2 warm-up steps)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one measurement may take")
    args = parser.parse_args()
    for setting in args.settings:
        setting_env(setting)  # refuse a bad name before any work

    load_before = os.getloadavg()[0]
    idle = {s: run_step(s, args.steps, args.timeout) for s in args.settings}
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        time.sleep(2.0)  # let the scheduler see it busy
        busy = {s: run_step(s, args.steps, args.timeout) for s in args.settings}
    finally:
        competitor.kill()
        competitor.wait()
    load_after = os.getloadavg()[0]

    print(idle[args.settings[0]]["machine"])
    print(f"autogroup    {autogroup()}; competitor: one Python busy loop in a new session; "
          f"load average {load_before:.2f} before, {load_after:.2f} after (1 min)")
    print(f"workload     default recipe (params.yaml), S3T step alone, {args.steps} timed steps per measurement")
    base = args.settings[0]
    print(f"{'setting':14s} {'wait':>14s} {'threads':>7s} {'idle':>8s} {'busy':>8s} {'busy/idle':>9s} "
          f"{'idle vs ' + base:>14s} {'busy vs ' + base:>14s}")
    for s in args.settings:
        i, b = idle[s]["samples_per_s"]["default"], busy[s]["samples_per_s"]["default"]
        i0, b0 = idle[base]["samples_per_s"]["default"], busy[base]["samples_per_s"]["default"]
        print(f"{s:14s} {idle[s]['wait_policy']:>14s} {idle[s]['threads']:7d} {i:8.1f} {b:8.1f} {b / i:8.2f}x "
              f"{i / i0:13.2f}x {b / b0:13.2f}x")


if __name__ == "__main__":
    main()
