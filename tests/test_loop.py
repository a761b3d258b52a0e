"""Training data as tensors: aligned for TensorFlow, shared with NumPy rather than copied."""

import numpy as np

from bnlab.data.splits import TENSOR_ALIGNMENT, aligned
from bnlab.ml.loop import as_tensor


def test_aligned_copies_only_what_is_not_aligned():
    raw = np.zeros(1000 + TENSOR_ALIGNMENT, np.uint8)
    offset = next(i for i in range(1, TENSOR_ALIGNMENT) if (raw.ctypes.data + i) % TENSOR_ALIGNMENT)
    misaligned = raw[offset : offset + 1000].reshape(10, 100)
    misaligned[...] = np.arange(1000).reshape(10, 100) % 251
    fixed = aligned(misaligned)
    assert fixed.ctypes.data % TENSOR_ALIGNMENT == 0 and fixed is not misaligned
    np.testing.assert_array_equal(fixed, misaligned)
    assert fixed.dtype == misaligned.dtype and fixed.flags.c_contiguous
    assert aligned(fixed) is fixed


def test_a_tensor_shares_the_arrays_memory():
    pixels = aligned(np.arange(60, dtype=np.uint8).reshape(6, 10))
    tensor = as_tensor(pixels)
    pixels[0, 0] = 200  # seen through the tensor: no copy was made
    assert tensor.numpy()[0, 0] == 200 and tensor.dtype.name == "uint8"


def test_read_only_or_misaligned_arrays_are_copied():
    frozen = aligned(np.arange(12, dtype=np.float32).reshape(3, 4))
    frozen.flags.writeable = False
    np.testing.assert_array_equal(as_tensor(frozen).numpy(), frozen)
    strided = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    np.testing.assert_array_equal(as_tensor(strided).numpy(), strided)
