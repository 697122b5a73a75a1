"""The C allocator's settings for training on CPU: keep freed memory for the next step (glibc).

Why this exists: a pre-training step allocates and frees the same large tensors every step (the
two crops of a batch are 16.5 MB, then activations and gradients). By default glibc's malloc
serves large requests with ``mmap`` and hands freed memory at the top of its heap back to the
kernel (``M_TRIM_THRESHOLD``), so the next step takes page faults and has the kernel zero the
same memory again. Its dynamic thresholds adapt to this only in part. Fixing both thresholds
keeps freed blocks in the heap for reuse: the S3T step on 2 CPU cores ran at 248-250 samples/s
against 228-247 with glibc's defaults, in three paired runs of `python bench/bench_pretrain.py
--steps 20 --augment params --allocator keep|system` (BENCHMARKS.md), the bare backbone's step
unchanged.

The cost: the process keeps its peak heap until it exits instead of shrinking between steps,
which is what a training process needs anyway. Call it once, early, from an entry point (a stage,
the CLI, a benchmark), never at import: it changes the whole process.

What the settings mean (glibc ``mallopt(3)``): ``M_MMAP_THRESHOLD`` is the request size from
which malloc uses ``mmap`` (glibc caps it at 32 MiB on 64-bit systems, and setting it also turns
off the dynamic adjustment); ``M_TRIM_THRESHOLD`` is how much free memory at the top of the heap
is kept before it is returned. Setting only the trim threshold would leave the mmap threshold at
its 128 KiB start and made the step 3x slower here.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["MMAP_THRESHOLD_MAX", "keep_freed_memory"]

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
INT_MAX = 2**31 - 1  # mallopt takes a C int


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_MAX, trim_threshold: int = 2**30) -> bool:
    """Set glibc's mmap and trim thresholds (bytes) for this process; True when they were applied.

    Returns False, changing nothing, where the C library is not glibc (macOS, musl, Windows).
    Raises ValueError for a threshold outside what glibc accepts.
    """
    if not 0 < mmap_threshold <= MMAP_THRESHOLD_MAX:
        raise ValueError(f"mmap_threshold must be in (0, {MMAP_THRESHOLD_MAX}] bytes (glibc's cap), got {mmap_threshold}")
    if not 0 < trim_threshold <= INT_MAX:
        raise ValueError(f"trim_threshold must be in (0, {INT_MAX}] bytes, got {trim_threshold}")
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))
