"""glibc's heap set up for TensorFlow's large buffers (bnlab.execution.heap): served from the
heap rather than a mapping of their own each, wherever jobs run: the stage's own process (one
at a time), the workers forked for them, and the process a Dask worker starts for each job."""

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LARGE = 64 * 2**20  # above any mmap threshold glibc picks by itself (32 MiB at most)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mapped_growth(nbytes: int) -> int:
    """How many more bytes glibc holds in mappings of their own (mallinfo2's hblkhd) while a
    buffer of ``nbytes`` is allocated."""
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    before = mallinfo2().hblkhd
    buffer = np.ones(nbytes, dtype=np.uint8)  # numpy's buffers come from malloc
    grown = mallinfo2().hblkhd - before
    del buffer
    return grown


SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[1])
from test_heap import LARGE, mapped_growth
from bnlab.execution.heap import keep_large_buffers
from bnlab.execution.local import run_all
before = mapped_growth(LARGE)
if sys.argv[2] == "set":
    assert keep_large_buffers()
    print(before, mapped_growth(LARGE))
elif sys.argv[2] == "dask":  # the process a Dask worker runs each job in
    from bnlab.execution.cluster import in_fresh_process
    os.environ["PYTHONPATH"] = sys.argv[1]
    print(before, *(in_fresh_process(mapped_growth, LARGE) for _ in range(2)))
else:
    print(before, *run_all(mapped_growth, [LARGE, LARGE], int(sys.argv[2]), key=lambda n: 0))
"""


def growths(*args: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(Path(__file__).parent), *args], capture_output=True, text=True, check=True
    )
    return [int(found) for found in done.stdout.split()]


def test_a_large_buffer_gets_its_own_mapping_by_default_and_the_heap_once_set():
    by_default, once_set = growths("set")
    assert by_default >= LARGE  # the measurement sees the mapping it is there to catch
    assert once_set == 0


@pytest.mark.parametrize("where", ["1", "2", "dask"], ids=["in-process", "forked-workers", "dask-job-process"])
def test_jobs_run_with_the_heap_set_wherever_they_run(where):
    by_default, *in_jobs = growths(where)
    assert by_default >= LARGE
    assert in_jobs == [0, 0]
