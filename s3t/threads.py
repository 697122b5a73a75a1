"""CPU thread set-up for the entry points: OpenMP threads that spin only briefly, then sleep.

Why this exists. PyTorch's CPU kernels (ATen, MKL, oneDNN) run on the GNU OpenMP runtime that the
torch wheel bundles. Between parallel regions each thread waits for the others, and by default
libgomp waits by polling 300,000 times (several milliseconds) before it sleeps. On a machine whose
cores are all busy that is ruinous: when the scheduler preempts one of our threads for another
program, our other thread burns its time slice polling for it, and the polling eats the CPU share
the kernel would have given to useful work. Linux groups the processes of each terminal session
(autogroup), so a busy program started from another terminal gets half of a 2-core machine
whatever its ``nice`` level.

Measured on the 2-core development machine with the default pre-training step, idle and beside one
busy loop of another session, in one run of ``python bench/bench_contention.py --steps 8``
(BENCHMARKS.md): libgomp's default ran 47.5 samples/s idle and 3.7 beside the busy loop (0.08x).
Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``) kept 0.62x of its idle speed beside it, but its idle
speed was 0.85x of the default: on this virtual machine every wake-up of a sleeping thread is slow,
and an eager step starts thousands of parallel regions. Polling 4,000 times first (about 0.1 ms,
``GOMP_SPINCOUNT=4000``) covers the gap between two operators of a running step, so an idle step
rarely sleeps (0.92x of the default in that run, within the run-to-run noise of these idle
figures), and stops a waiting thread before it eats a preempted partner's share (0.51x of its idle
speed beside the busy loop). That is what :func:`sleep_at_barriers` sets.

libgomp reads these variables once, when the library is loaded (``import torch``), so this is an
environment variable set before that import, not a call: entry points (the ``s3t`` command, the
DVC stages, the Prefect featurization flow, the benchmarks) call :func:`sleep_at_barriers` before
they import torch. Importing this module sets nothing. A user's own ``OMP_WAIT_POLICY``
(``ACTIVE`` on a dedicated machine) or ``GOMP_SPINCOUNT`` always wins.

The thread count itself is left as PyTorch picks it (one per core), busy machine or not: the
count decides how reductions are split, so another count would give a run on a busy machine other
weights than the same run on an idle one. The wait settings change no result.
"""

from __future__ import annotations

import os
import sys

__all__ = ["SPIN_COUNT", "SPIN_COUNT_VARIABLE", "WAIT_POLICY_VARIABLE", "openmp_wait_policy", "sleep_at_barriers"]

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
SPIN_COUNT_VARIABLE = "GOMP_SPINCOUNT"
SPIN_COUNT = 4000  # polls before a waiting thread sleeps (libgomp's default: 300,000)


def openmp_wait_policy() -> str:
    """How this process's environment tells OpenMP threads to wait: ``"PASSIVE"`` or ``"ACTIVE"``
    (``OMP_WAIT_POLICY``), ``"spin N"`` (``GOMP_SPINCOUNT`` alone), or ``"default"`` (neither:
    libgomp polls 300,000 times, then sleeps)."""
    policy = os.environ.get(WAIT_POLICY_VARIABLE, "").strip().upper()
    if not policy and os.environ.get(SPIN_COUNT_VARIABLE, "").strip():
        return f"spin {os.environ[SPIN_COUNT_VARIABLE].strip()}"
    return policy or "default"


def sleep_at_barriers() -> bool:
    """Have waiting OpenMP threads poll :data:`SPIN_COUNT` times, then sleep (``GOMP_SPINCOUNT``),
    unless the environment already names a wait policy or a spin count (the user's choice).

    Must run before ``torch`` is first imported in this process (libgomp reads the variable when it
    loads). Returns True when this call's setting is in effect for this process. Returns False when
    the user's own setting was left alone, or when torch was already loaded (the variable is still
    set, so child processes get it).
    """
    if WAIT_POLICY_VARIABLE in os.environ or SPIN_COUNT_VARIABLE in os.environ:
        return False
    os.environ[SPIN_COUNT_VARIABLE] = str(SPIN_COUNT)
    return "torch" not in sys.modules
