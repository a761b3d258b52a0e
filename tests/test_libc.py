"""The C library calls that keep workers small: which mappings are paged out, and that they
leave memory without their contents changing."""

import mmap
import sys

import pytest

from bnlab.execution import libc

MAPS = """\
55d4c0a00000-55d4c0a2a000 r--p 00000000 fe:01 1311 /usr/bin/python3.11
55d4c0a2a000-55d4c0b10000 r-xp 0002a000 fe:01 1311 /usr/bin/python3.11
55d4c0c00000-55d4c0c10000 rw-p 00200000 fe:01 1311 /usr/bin/python3.11
55d4c1000000-55d4c2000000 rw-p 00000000 00:00 0 [heap]
7f00aa000000-7f00aa100000 r--s 00000000 00:05 2048 /dev/shm/buffer (deleted)
7f00ab000000-7f00ab001000 r--p 00000000 00:00 0
7ffd1e5fe000-7ffd1e600000 r-xp 00000000 00:00 0 [vdso]
"""


def test_only_read_only_mappings_of_files_are_chosen(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(MAPS)
    assert libc.read_only_file_ranges(str(maps)) == [
        (0x55D4C0A00000, 0x55D4C0A2A000),
        (0x55D4C0A2A000, 0x55D4C0B10000),
        (0x7F00AA000000, 0x7F00AA100000),
    ]


def test_unreadable_maps_choose_nothing(tmp_path):
    assert libc.read_only_file_ranges(str(tmp_path / "missing")) == []


def resident_kib(path) -> int:
    """Rss of this process's mapping of ``path``, from /proc/self/smaps."""
    current, total = None, 0
    with open("/proc/self/smaps") as lines:
        for line in lines:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                current = fields[5] if len(fields) > 5 else None
            elif fields[0] == "Rss:" and current == str(path):
                total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT is Linux's")
def test_a_touched_read_only_file_leaves_memory_and_reads_back_the_same(tmp_path):
    path = tmp_path / "library.bin"
    content = bytes(range(256)) * (16 * 4096)  # 16 MiB
    path.write_bytes(content)
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert sum(mapped[i] for i in range(0, len(mapped), 4096)) == 0  # touch every page
        assert resident_kib(path) >= 15 * 1024
        assert libc.page_out_read_only_files() >= len(content)
        assert resident_kib(path) < 1024
        assert mapped[:] == content  # read back from the file
