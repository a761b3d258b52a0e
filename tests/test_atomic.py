"""Outputs appear whole or not at all; a full disk is one message naming the output."""

import errno
import os

import pytest

from bnlab.core.atomic import OutputError, atomic_path, write_error


def disk_full(filename=None, filename2=None):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename, None, filename2)


def test_a_full_disk_while_writing_names_the_output_not_the_temporary_file(tmp_path):
    target = tmp_path / "out" / "models"
    with pytest.raises(OutputError, match=f"^cannot write {target}: No space left on device$"):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "weights.npz").write_bytes(b"half")
            raise disk_full(str(tmp / "weights.npz"))
    assert list(target.parent.iterdir()) == []  # no part of the output


def test_a_full_disk_elsewhere_names_that_file(tmp_path):
    artifact = tmp_path / "mlartifacts" / "model.keras"
    with pytest.raises(OutputError, match=f"^cannot write {artifact}: No space left on device$"):
        with atomic_path(tmp_path / "models", directory=True):
            raise disk_full("/src/model.keras", str(artifact))  # shutil's copy: source, destination
    assert not (tmp_path / "models").exists()


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "file.txt"):
            raise PermissionError(errno.EACCES, "denied")
    assert list(tmp_path.iterdir()) == []


def test_write_error_without_a_file_names_the_given_path():
    assert str(write_error("eval/x", disk_full())) == "cannot write eval/x: No space left on device"
