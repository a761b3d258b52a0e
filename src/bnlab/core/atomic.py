"""Atomic writes: a stage's output appears whole or not at all.

DVC deletes outputs before a stage runs; writing to a temporary name in the same folder and
renaming at the end means an interrupted stage leaves nothing DVC could mistake for a result.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputError(OSError):
    """An output that cannot be written (e.g. a folder that is not writable, a full disk)."""


# Errors of the disk, not of the program: reported as one line naming the file.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def is_write_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def write_error(path, exc: OSError) -> OutputError:
    """``cannot write <path>: No space left on device``: the file the error is about if it
    says, else ``path``."""
    # shutil's copies set filename2 to the destination, the file that could not be written.
    return OutputError(f"cannot write {exc.filename2 or exc.filename or path}: {exc.strerror or exc}")


def ensure_writable_dir(folder: Path) -> None:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")


@contextmanager
def atomic_path(target: Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success only."""
    target = Path(target)
    ensure_writable_dir(target.parent)
    if target.exists() and not os.access(target, os.W_OK):  # checked now, not after the work
        raise OutputError(f"output {target} exists and is not writable")
    prefix = f".{target.name}.tmp-"
    for leftover in target.parent.glob(f"{prefix}*"):  # of a stage killed outright (kill -9)
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise write_error(target, exc) if is_write_error(exc) else exc from None
    try:
        yield tmp
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        os.chmod(target, 0o755 if directory else 0o644)  # mkstemp/mkdtemp make them private
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if is_write_error(exc) and not isinstance(exc, OutputError):
            named = exc.filename2 or exc.filename
            if named and not Path(named).resolve().is_relative_to(tmp.resolve()):
                raise write_error(target, exc) from None  # another file (MLflow's artifacts)
            # The temporary name means nothing to the user: name the output.
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
