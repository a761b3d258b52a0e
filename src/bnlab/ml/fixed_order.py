"""Matrix products whose sums run in the same order on every CPU, and inference in fixed shapes.

Eigen (TensorFlow's and XLA's matrix products, with the settings of :mod:`tf_runtime`) reads
the CPU's L1 cache size at run time and cuts a long sum into blocks of ``kc`` terms, adding the
blocks' partial sums one after another: so the 784-long sums of the first layer were added in a
different order on a 32 KiB-L1 machine than on a 48 KiB one. Its single-threaded heuristic
(``evaluateProductBlockingSizesHeuristic`` in Eigen's ``GeneralBlockPanelKernel.h``) gives
``kc = ((L1 - 384) / 112)`` rounded down to a multiple of 8 for float with 8-float packets: 288
at 32 KiB, the smallest L1 of any x86-64 CPU with AVX2, and more for larger caches; a sum of at
most ``kc`` terms is not cut. So every product here sums at most :data:`CHUNK` terms in one
piece and adds those pieces in a fixed order, in the forward pass and in both gradients.

This file travels with the served model (beside ``tf_runtime.py``), so it imports nothing of
bnlab but that.
"""

from __future__ import annotations

import numpy as np

if __package__:  # bnlab.ml.fixed_order
    from bnlab.ml.tf_runtime import keras, tf
else:  # fixed_order.py beside the served model, where bnlab need not be installed
    from tf_runtime import keras, tf

CHUNK = 256  # < 288, Eigen's smallest block on a CPU with AVX2 (see above)
INFERENCE_ROWS = 1024  # rows per compiled inference call: one shape, one compilation


def chunk_bounds(length: int) -> list[tuple[int, int]]:
    """``length`` terms cut into the fewest equal pieces of at most :data:`CHUNK` (the last one
    may be shorter): 784 → four of 196."""
    pieces = -(-length // CHUNK)
    size = -(-length // pieces) if pieces else 0
    return [(start, min(start + size, length)) for start in range(0, length, size or 1)]


def _chunked(a, b):
    total = None
    for start, stop in chunk_bounds(int(a.shape[-1])):
        part = tf.matmul(a[:, start:stop], b[start:stop])
        total = part if total is None else total + part  # left to right: a fixed order
    return total


@tf.custom_gradient
def fixed_order_matmul(a, b):
    """``a @ b`` for 2-D ``a``, ``b``, every sum over at most :data:`CHUNK` terms; the gradients
    (``dy @ b.T`` and ``a.T @ dy``, whose sums run over the batch) are cut the same way."""

    def gradient(dy):
        return fixed_order_matmul(dy, tf.transpose(b)), fixed_order_matmul(tf.transpose(a), dy)

    return _chunked(a, b), gradient


@keras.saving.register_keras_serializable(package="bnlab")
class FixedOrderDense(keras.layers.Dense):
    """Keras's ``Dense`` (the same weights and config) computed with :func:`fixed_order_matmul`."""

    def call(self, inputs, training=None):
        # A read of the kernel, not the variable: custom_gradient takes tensors (the gradient
        # reaches the variable through the read).
        outputs = fixed_order_matmul(inputs, tf.identity(keras.ops.convert_to_tensor(self.kernel)))
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs


def compile_logits(network, rows: int = INFERENCE_ROWS):
    """``logits(X)`` of ``network`` in inference mode for all rows of ``X`` (uint8 or float32,
    an array or a tensor): ``rows`` float32 rows per call of one XLA-compiled function, the last
    block padded with zeros. One shape, so one compilation whatever the number of rows; and
    every row is computed in a block of that shape at the same place whatever else is in it, so
    the served model and the estimator give the same bytes."""
    compiled = tf.function(lambda block: network(block, training=False), jit_compile=True,
                           input_signature=[tf.TensorSpec([rows, network.input_shape[-1]], tf.float32)])

    def logits(X) -> np.ndarray:
        x = tf.convert_to_tensor(X)
        n = int(x.shape[0])
        out = np.empty((n, network.output_shape[-1]), np.float32)
        for start in range(0, n, rows):
            block = tf.cast(x[start : start + rows], tf.float32)  # in TensorFlow: no NumPy copy
            if block.shape[0] < rows:
                block = tf.pad(block, [[0, rows - block.shape[0]], [0, 0]])
            out[start : start + rows] = compiled(block).numpy()[: n - start]
        return out

    return logits
