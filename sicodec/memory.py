"""Keep freed memory in sicodec's own processes (the command line, training, benchmark workers) for reuse."""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep what is freed there.

    Coding an image and a training step free and allocate the same large activations again and again;
    by default each one is a fresh mapping from the system, paid for again in page faults and zeroed
    pages (about a quarter of a hyperprior step or of coding a Kodak image on 2 CPU cores). The process
    keeps its peak memory instead. Returns whether it took effect: not off Linux, not without glibc's
    mallopt, and not where the user set glibc's own variables (they win). Libraries should not change
    their host's allocator, so `import sicodec` does not call it.
    """
    if not sys.platform.startswith("linux") or any(v in os.environ for v in ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
