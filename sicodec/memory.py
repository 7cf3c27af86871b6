"""Keep freed memory for reuse in sicodec's throughput jobs: training, evaluation and benchmarks."""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep what is freed there.

    A training step, or coding one Kodak-sized image after another, frees and allocates the same large
    activations again and again; by default each one is a fresh mapping from the system, paid for again
    in page faults and zeroed pages (about a quarter of a hyperprior training step on 2 CPU cores). The
    process keeps its peak memory instead, and more of it: a 2048x2048 decode peaked at 2.24 GiB instead
    of 1.50 (docs/benchmarks.md), so the commands that code one image of any size (compress, decompress,
    roundtrip, truncate, serve) keep glibc's default. Returns whether it took effect: not off Linux, not
    without glibc's mallopt, and not where the user set glibc's own variables (they win). `import sicodec`
    does not call it.
    """
    if not sys.platform.startswith("linux") or any(v in os.environ for v in ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
