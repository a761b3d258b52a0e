"""A full disk for a test: a small tmpfs mounted over a folder and filled up. Needs root (CI and
these machines run as root); tests skip with the reason where mounting is not allowed."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

HEADROOM = 256 * 1024  # bytes beyond the files kept: filled up before the test goes on


@lru_cache(maxsize=1)
def can_mount() -> str | None:
    """None if this process may mount a tmpfs, else why not: it tries one (root alone is not
    enough in a container without the capability to mount)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    with tempfile.TemporaryDirectory() as folder:
        tried = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder], capture_output=True, text=True
        )
        if tried.returncode != 0:
            said = (tried.stderr or tried.stdout).strip().splitlines()
            return f"cannot mount a tmpfs here: {said[0] if said else f'exit {tried.returncode}'}"
        subprocess.run(["umount", folder], check=True)
    return None


def fill(folder: Path) -> None:
    """Write until the filesystem refuses: what is left is less than one block."""
    with open(folder / ".filler", "wb", buffering=0) as out:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):  # big blocks first, then what still fits
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                continue


@contextmanager
def full_disk(folder: Path, keep: bool = False) -> Iterator[Path]:
    """Mount a tmpfs over ``folder`` (its contents copied in if ``keep``), fill it, yield it;
    unmount afterwards, so the folder is as before."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if keep else {}
    size = HEADROOM + sum(len(content) for content in saved.values())
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        for name, content in saved.items():
            (folder / name).write_bytes(content)
        fill(folder)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)
