"""The few C library and Linux calls that keep worker processes small and tied to the stage.
Each is best effort: where the call does not exist (another libc, another OS, an older kernel)
it does nothing, and only memory or clean-up is lost, never a result."""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # malloc.h
PR_SET_PDEATHSIG = 1  # linux/prctl.h
MADV_PAGEOUT = 21  # linux/mman.h (Linux 5.4 and later)


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc
        return None


def _call(name: str, *args) -> int | None:
    function = getattr(_libc(), name, None)
    return None if function is None else function(*args)


def mallopt(option: int, value: int) -> bool:
    """glibc's ``mallopt``: whether it took the setting."""
    return bool(_call("mallopt", option, value))


def use_one_malloc_arena() -> None:
    """One malloc arena for all of this process's threads: by default each of TensorFlow's
    threads gets its own, and each keeps the memory it freed for itself."""
    mallopt(M_ARENA_MAX, 1)


def return_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc keeps them for reuse)."""
    _call("malloc_trim", 0)


def die_with_parent_signal(signal_number: int) -> None:
    """Have the kernel send ``signal_number`` to this process when its parent process ends."""
    _call("prctl", PR_SET_PDEATHSIG, signal_number)


def page_out_read_only_files() -> int:
    """Drop this process's pages of read-only file mappings (libraries' code and constants)
    from memory; a page used again is read back from the file. A process that imported a
    library to share it with its children, and never runs it, frees this way what the import
    touched once: for TensorFlow, about 300 MiB. Pages another process maps stay. Returns the
    bytes asked for (0 where madvise(MADV_PAGEOUT) is unavailable)."""
    madvise = getattr(_libc(), "madvise", None)
    if madvise is None:
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    asked = 0
    for start, end in read_only_file_ranges():
        if madvise(start, end - start, MADV_PAGEOUT) == 0:
            asked += end - start
    return asked


def read_only_file_ranges(maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """(start, end) of every mapping of a file that this process cannot write to. (MADV_PAGEOUT
    never loses data: a page the process did change goes to swap or stays. Writable mappings
    are left out as they are this process's working data.)"""
    try:
        with open(maps) as lines:
            rows = [line.split(maxsplit=5) for line in lines]
    except OSError:
        return []
    ranges = []
    for row in rows:
        if len(row) == 6 and row[5].startswith("/") and "w" not in row[1] and row[4] != "0":
            start, end = (int(address, 16) for address in row[0].split("-"))
            ranges.append((start, end))
    return ranges
