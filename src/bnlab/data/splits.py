"""The seeded split of MNIST's training images into train and validation, and reading a
prepared split back, as TensorFlow can use it in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnlab.core.layout import SPLITS
from bnlab.data.mnist import DataError, Mnist, check_images, load_npz


def split_indices(
    labels: np.ndarray, val_size: int, seed: int, method: str = "stratified"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images, each in ascending order.

    ``stratified`` draws ``val_size`` images with the class proportions of ``labels``, seeded;
    ``first`` takes the first ``val_size`` as validation, as TF1's ``read_data_sets`` did.
    """
    n = len(labels)
    if not 0 < val_size < n:
        raise DataError(
            f"split.val_size must be between 1 and {n - 1} (the data has {n} training images), got {val_size}"
        )
    if method == "first":
        return np.arange(val_size, n), np.arange(val_size)
    if method != "stratified":
        raise ValueError(f"unknown split method {method!r}; allowed: stratified, first")
    from sklearn.model_selection import StratifiedShuffleSplit

    splitter = StratifiedShuffleSplit(n_splits=1, test_size=val_size, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(n), labels))
    return np.sort(train_idx), np.sort(val_idx)


def split_mnist(data: Mnist, val_size: int, seed: int, method: str) -> dict[str, dict]:
    """The splits by name (:data:`bnlab.core.layout.SPLITS`): train and validation from the
    60,000 training images; test is the official 10,000, untouched."""
    train_idx, val_idx = split_indices(data.y_train, val_size, seed, method)
    parts = (
        {"x": data.x_train[train_idx], "y": data.y_train[train_idx]},
        {"x": data.x_train[val_idx], "y": data.y_train[val_idx]},
        {"x": data.x_test, "y": data.y_test},
    )
    return dict(zip(SPLITS, parts, strict=True))


TENSOR_ALIGNMENT = 64  # bytes: TensorFlow's CPU kernels refuse tensor memory aligned less


def aligned(array: np.ndarray) -> np.ndarray:
    """``array`` if its memory is C-contiguous and starts on a TENSOR_ALIGNMENT boundary, else a
    copy that does: a tensor can then share its memory (:func:`bnlab.ml.loop.as_tensor`)."""
    if array.flags.c_contiguous and array.ctypes.data % TENSOR_ALIGNMENT == 0:
        return array
    buffer = np.empty(array.nbytes + TENSOR_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % TENSOR_ALIGNMENT
    copy = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One prepared split, checked (:func:`bnlab.data.mnist.check_images`), its images aligned
    for TensorFlow to use in place (:func:`aligned`)."""
    arrays = load_npz(path, ("x", "y"))
    x, y = aligned(arrays["x"]), arrays["y"]
    check_images(x, y, origin=str(path))
    return x, y


def flat_pixels(x: np.ndarray) -> np.ndarray:
    """Images as rows of pixels: what the estimator takes."""
    return x.reshape(len(x), -1)
