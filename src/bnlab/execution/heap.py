"""How a process that trains or tests models sets up glibc's heap: TensorFlow's large buffers
are served from the heap and reused, instead of mapped and unmapped for every allocation.

By default glibc hands a request above its mmap threshold (which adapts, but never above
32 MiB) a fresh mapping of its own, and unmaps it on free: every such buffer is new zeroed
pages, faulted in one by one by the kernel. A job allocates such buffers over and over (seen
with strace in a `notebook` job: dozens of 33 and 41 MiB buffers, the latter the training
split's 55,000 x 784 uint8 pixels), so a one-worker stage spent a sixth of its time in the
kernel (docs/benchmarks.md, "The C heap"). A threshold above them sends them to the heap, where
freed memory is reused.

Allocation never touches the arithmetic: the results are the same bytes either way. It costs
memory only while a job runs: a worker gives its free heap back after each job
(:func:`bnlab.execution.job.return_freed_memory`). Best effort, as :mod:`bnlab.execution.libc`:
elsewhere than glibc nothing changes. Kept out of the modules a job's code fingerprint covers
(:func:`bnlab.tracking.job_cache.code_fingerprint`), as it cannot change what a job computes.
"""

from __future__ import annotations

from bnlab.execution.libc import mallopt

M_TRIM_THRESHOLD = -1  # malloc.h
M_MMAP_THRESHOLD = -3
# Far above those buffers, so that wider networks' stay in the heap too.
MMAP_THRESHOLD = 256 * 2**20
# Free memory at the heap's top kept for the next buffer rather than given back at each free
# (glibc's default is twice the mmap threshold).
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


def keep_large_buffers() -> bool:
    """Serve buffers up to MMAP_THRESHOLD from this process's heap (and children it forks
    later); whether glibc took both settings."""
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
