"""Training, evaluation and benchmarks keep freed memory: glibc would otherwise map every large block
afresh and return it when freed, which cost about a quarter of a hyperprior training step on 2 CPU
cores. `import sicodec` and the commands that code one image of any size leave the allocator as it is."""

import ctypes
import os
import subprocess
import sys

import pytest

try:
    HAS_MALLINFO2 = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallinfo2")
except OSError:
    HAS_MALLINFO2 = False

# Run in a fresh process, whose allocator starts at glibc's default (other tests train and evaluate in the
# suite's own). Prints, for one 64 MB block before and after an entry point has started: whether it was
# mapped on its own, and whether its memory stayed in the process after free().
SCRIPT = """
import ctypes, sys

import sicodec
from sicodec.errors import SicodecError

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p

def large_block():
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(64 << 20)
    mapped = libc.mallinfo2().hblkhd > before
    libc.free(ctypes.c_void_p(block))
    return mapped, libc.mallinfo2().fordblks >= 64 << 20

first = large_block()
entry, folder = sys.argv[1:]
if entry == "train":
    from sicodec.train.loop import train
    try:
        train("hyperprior", folder, folder + "/out", 1, lmbda=0.01)
    except SicodecError:
        pass  # an empty data folder: the process was set up before the data were looked at
elif entry.startswith("cli "):
    from sicodec.cli import main
    main([entry[4:], folder, folder])  # eval and bench: an empty folder, an error after the set-up
elif entry == "worker":
    from sicodec.bench.run import _one_thread_worker
    _one_thread_worker()
print(first, large_block())
"""


def _run(entry, folder, **env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    r = subprocess.run([sys.executable, "-c", SCRIPT, entry, str(folder)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[-1]


@pytest.mark.skipif(not HAS_MALLINFO2, reason="needs glibc (mallinfo2)")
@pytest.mark.parametrize("entry", ["train", "cli eval", "cli bench", "worker"])
def test_entry_points_keep_freed_memory(tmp_path, entry):
    assert _run(entry, tmp_path) == "(True, False) (False, True)"


@pytest.mark.skipif(not HAS_MALLINFO2, reason="needs glibc (mallinfo2)")
def test_the_library_and_the_users_glibc_settings_are_left_alone(tmp_path):
    assert _run("import only", tmp_path) == "(True, False) (True, False)"
    assert _run("cli decompress", tmp_path) == "(True, False) (True, False)"
    assert _run("cli eval", tmp_path, MALLOC_TRIM_THRESHOLD_="131072") == "(True, False) (True, False)"
