"""The C allocator's settings for tensor work: keep freed memory for the next call.

glibc's malloc gives blocks above its mmap threshold (128 KiB at first, raised as such
blocks are freed) back to the kernel when they are freed, and trims the free top of its
heap above the trim threshold. A forward pass frees its activations when it ends and
the next one allocates them again, so every page of them comes back through a page
fault: q at batch 64 took 4,600 page faults and 8 ms of system time per call, and with
the settings below its user time also fell by a quarter, 29.7 -> 22.4 ms (warm memory;
benchmarks/RESULTS.md, q). Keeping up to `limit_mib` of freed memory costs at most that
much resident memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit_mib: int = 64) -> bool:
    """Blocks under 32 MiB come from the heap, and up to limit_mib of free heap is kept
    for reuse. Process-wide; False (nothing changed) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, limit_mib << 20))
