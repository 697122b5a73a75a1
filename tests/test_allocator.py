"""s3t.allocator: glibc keeps freed memory in the heap once the thresholds are set."""

import platform
import subprocess
import sys

import pytest

from s3t.allocator import MMAP_THRESHOLD_MAX, keep_freed_memory

# Run in a child process: the setting changes the whole process, and the test suite's own
# allocations must not decide what the heap holds. mallinfo2 (glibc >= 2.33) reports the free
# bytes the heap keeps (fordblks) after a first 20 MiB tensor is freed: by default glibc
# served it with mmap and unmapped it (its dynamic threshold adapts only after that).
CHILD = """
import ctypes, sys, torch
from s3t.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.ones(20 * 2**20 // 4)  # 20 MiB, written so every page is touched
del x
print(int(applied), libc.mallinfo2().fordblks)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")


def _child(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
    applied, free = out.split()
    return bool(int(applied)), int(free)


@glibc
def test_freed_memory_stays_in_the_heap_only_when_kept():
    applied, kept_free = _child("keep")
    assert applied
    _, system_free = _child("system")
    assert kept_free >= 20 * 2**20  # the freed tensor is kept for the next one
    assert system_free < 20 * 2**20  # by default it goes back to the kernel


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mmap_threshold": 0}, "mmap_threshold"),
        ({"mmap_threshold": MMAP_THRESHOLD_MAX + 1}, "glibc's cap"),
        ({"trim_threshold": 2**31}, "trim_threshold"),
    ],
)
def test_thresholds_outside_what_glibc_accepts_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keep_freed_memory(**kwargs)
