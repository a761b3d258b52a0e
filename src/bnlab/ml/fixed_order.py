"""Matrix products whose sums run in the same order on every CPU, and inference in fixed shapes.

Eigen (TensorFlow's matrix products, with the settings of :mod:`tf_runtime`) reads the CPU's
L1 cache size at run time and cuts a long sum into blocks of ``kc`` terms, adding the blocks'
partial sums one after another: so the 784-long sums of the first layer were added in a
different order on a 32 KiB-L1 machine than on a 48 KiB one. The wheel's Eigen is built for AVX
without FMA, and its single-threaded heuristic (``evaluateProductBlockingSizesHeuristic`` in
``GeneralBlockPanelKernel.h``) then gives ``kc = (L1 - 256) / 80`` rounded down to a multiple of
8: 400 at 32 KiB (the smallest L1 data cache of Intel's and AMD's CPUs with AVX2), 608 at
48 KiB; a sum of at most ``kc`` terms is not cut. (XLA's dots are YNNPACK's, which in its
consistent-arithmetic mode gave the same weights with its CPU flags forced to AVX2 alone or to
Sapphire Rapids': :mod:`tf_runtime`.) Every product here sums at most :data:`CHUNK` terms in one
piece and adds those pieces in a fixed order, in the forward pass and in both gradients.

This file travels with the served model (beside ``tf_runtime.py``), so it imports nothing of
bnlab but that.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

if __package__:  # bnlab.ml.fixed_order
    from bnlab.ml.tf_runtime import keras, tf
else:  # fixed_order.py beside the served model, where bnlab need not be installed
    from tf_runtime import keras, tf

CHUNK = 256  # < 400, Eigen's smallest block on a CPU with AVX2 (see above)
INFERENCE_ROWS = 1024  # rows per block of inference
BLOCKS_PER_CALL = 16  # blocks per compiled call while the rows last (fewer calls, two shapes)


def chunk_bounds(length: int) -> list[tuple[int, int]]:
    """``length`` terms cut into the fewest equal pieces of at most :data:`CHUNK` (the last one
    may be shorter): 784 → four of 196."""
    if length <= 0:
        return []
    size = -(-length // -(-length // CHUNK))  # ceil(length / number of pieces)
    return [(start, min(start + size, length)) for start in range(0, length, size)]


def _chunked(a, b):
    total = None
    for start, stop in chunk_bounds(int(a.shape[-1])):
        part = tf.matmul(a[:, start:stop], b[start:stop])
        total = part if total is None else total + part  # left to right: a fixed order
    return total


@tf.custom_gradient
def fixed_order_matmul(a, b):
    """``a @ b`` for 2-D ``a``, ``b``, every sum over at most :data:`CHUNK` terms; the gradients
    are cut the same way (``dy @ b.T`` sums over the layer's outputs, ``a.T @ dy`` over the
    batch)."""

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


class Inference(NamedTuple):
    """What inference gives per row, in float64: ``log_proba`` (log-softmax of the logits) and
    ``proba`` (softmax)."""

    log_proba: np.ndarray
    proba: np.ndarray


def _head(logits):
    """Log-softmax and softmax in float64, inside the compiled call: numpy's and scipy's
    ``exp``/``log`` pick float64 kernels by the CPU (AVX-512 or not) and give other last bits;
    XLA's code here is pinned with the rest (:mod:`tf_runtime`). The float32 logits convert
    exactly, so a row's largest log-probability is its largest logit's."""
    x = tf.cast(logits, tf.float64)
    log_proba = x - tf.reduce_logsumexp(x, axis=1, keepdims=True)
    return log_proba, tf.exp(log_proba)


def _blocks_function(network, rows: int, blocks: int):
    """One XLA-compiled call: ``blocks`` blocks of ``rows`` rows, one after another, each cast
    to float32 inside (a uint8 block is a quarter of the bytes to move; compiled per dtype)."""
    width = network.input_shape[-1]

    @tf.function(jit_compile=True)
    def run(x):
        log_out = tf.TensorArray(tf.float64, size=blocks)
        out = tf.TensorArray(tf.float64, size=blocks)
        for i in tf.range(blocks):
            block = tf.cast(tf.slice(x, [i * rows, 0], [rows, width]), tf.float32)
            log_proba, proba = _head(network(block, training=False))
            log_out, out = log_out.write(i, log_proba), out.write(i, proba)
        return tf.reshape(log_out.stack(), [blocks * rows, -1]), tf.reshape(out.stack(), [blocks * rows, -1])

    return run


def compile_inference(network, rows: int = INFERENCE_ROWS):
    """``infer(X)`` → :class:`Inference` of ``network`` in inference mode for all rows of ``X``
    (uint8 or float32, an array or a tensor), in blocks of ``rows`` rows: :data:`BLOCKS_PER_CALL`
    blocks per call while that many remain, then one at a time, the last padded with zeros. Two
    compiled shapes (per input dtype) whatever the number of rows; and every row is computed in a
    block of the same shape at the same place whatever else is in it, so the served model and the
    estimator give the same bytes."""
    many, one = _blocks_function(network, rows, BLOCKS_PER_CALL), _blocks_function(network, rows, 1)

    def infer(X) -> Inference:
        x = tf.convert_to_tensor(X)
        n = int(x.shape[0])
        classes = network.output_shape[-1]
        log_proba, proba = np.empty((n, classes), np.float64), np.empty((n, classes), np.float64)
        start = 0
        while start < n:
            size = BLOCKS_PER_CALL * rows if n - start >= BLOCKS_PER_CALL * rows else rows
            block = x[start : start + size]
            if block.shape[0] < size:
                block = tf.pad(block, [[0, size - block.shape[0]], [0, 0]])
            block_log, block_proba = (many if size > rows else one)(block)
            log_proba[start : start + size] = block_log.numpy()[: n - start]
            proba[start : start + size] = block_proba.numpy()[: n - start]
            start += size
        return Inference(log_proba, proba)

    return infer
