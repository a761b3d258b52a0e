"""BN's population statistics recomputed after training ("precise BN", Wu & Johnson 2021).

In inference mode a BN layer normalizes with the moving averages of the batch statistics it saw
in training. With momentum 0.99 those averages forget slowly: after 150 steps they still hold
0.99^150 ≈ 22% of their initial values (mean 0, variance 1), and the network they describe
has moved on since. Recomputed statistics are each BN layer's mean and variance of its inputs
over the training set, in inference mode, layer by layer: a layer's inputs are computed with
the layers below it already normalizing with their recomputed statistics, as at inference.

The same bytes on every CPU: each layer's inputs come from XLA-compiled code in blocks of fixed
shape (:mod:`bnlab.ml.fixed_order`), and the float64 sums run row after row in the rows' order
(numpy reduces a C-ordered array over its first axis row by row, column-wise: no CPU-chosen
order). The variance is the population's (divided by the number of rows), as BN's batch
variance is in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnlab.ml.compiled import template_for
from bnlab.ml.fixed_order import INFERENCE_ROWS
from bnlab.ml.hyperparams import BN_STATISTICS
from bnlab.ml.tf_runtime import keras, tf

STATISTICS = ("moving_mean", "moving_variance")  # a BN layer's variables that inference reads
FILE = "bn_statistics.npz"  # in a BN model's folder: both kinds, as :func:`both_kinds` names them


def batch_norm_layers(model: keras.Model) -> list:
    """The model's BN layers (batch renormalization's too), from input to output."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def current_statistics(model: keras.Model) -> dict[str, np.ndarray]:
    """``{"bn_1/moving_mean": ..., "bn_1/moving_variance": ..., ...}``: what inference reads now."""
    return {
        f"{layer.name}/{name}": np.asarray(getattr(layer, name).numpy())
        for layer in batch_norm_layers(model)
        for name in STATISTICS
    }


def install(model: keras.Model, statistics: dict[str, np.ndarray]) -> None:
    """Make inference read ``statistics`` (as :func:`current_statistics` names them)."""
    for layer in batch_norm_layers(model):
        for name in STATISTICS:
            getattr(layer, name).assign(np.asarray(statistics[f"{layer.name}/{name}"], dtype=np.float32))


def population_statistics(model: keras.Model, X, rows: int = INFERENCE_ROWS) -> dict[str, np.ndarray]:
    """Each BN layer's mean and variance of its inputs over all rows of ``X`` in inference mode
    (see above), as :func:`current_statistics` names them. ``model`` is left as it was."""
    template = template_for(model)
    layers = batch_norm_layers(template.model)
    found = {}
    with template.loaded(model):  # the template holds the model's values; they go nowhere back
        pixels = inputs = _blocks(np.asarray(X), rows)
        from_pixels = _is_residual(template.model)
        for index, layer in enumerate(layers):
            segment = template.function(
                ("bn_segment", index, rows), lambda index=index: _segment(template.model, layers, index)
            )
            inputs = _through(segment, pixels if from_pixels else inputs)
            mean, variance = _moments(inputs)
            for name, value in zip(STATISTICS, (mean, variance)):
                getattr(layer, name).assign(value)  # the next layer's inputs see them
                found[f"{layer.name}/{name}"] = value
    return found


def _segment(network: keras.Model, layers: list, index: int):
    """From the previous BN layer's input (the network's input, for the first) to this one's,
    in inference mode, XLA-compiled. In a residual network a block's input also comes around
    the previous BN layer, so each segment starts at the network's input."""
    start = layers[index - 1].input if index and not _is_residual(network) else network.inputs
    segment = keras.Model(start, layers[index].input)

    @tf.function(jit_compile=True)
    def run(block):
        return segment(tf.cast(block, tf.float32), training=False)

    return run


def _is_residual(network: keras.Model) -> bool:
    # The skip connection's sum, Keras's own layer: not SkipGain, whose class is another one in
    # a process that has loaded a served model (its residual.py registers a copy under the name).
    return any(isinstance(layer, keras.layers.Add) for layer in network.layers)


@dataclass(frozen=True)
class _Blocks:
    """Rows in blocks of one shape (one compiled shape for every block): ``padded``, the last
    filled up with zero rows, and ``count``, the real rows of each."""

    padded: list[np.ndarray]
    count: list[int]

    def rows(self):
        """Each block's real rows."""
        return (block[:count] for block, count in zip(self.padded, self.count, strict=True))


def _blocks(array: np.ndarray, rows: int) -> _Blocks:
    padded, count = [], []
    for start in range(0, len(array), rows):
        block = array[start : start + rows]
        count.append(len(block))
        if len(block) < rows:
            block = np.concatenate([block, np.zeros((rows - len(block), *block.shape[1:]), block.dtype)])
        padded.append(block)
    return _Blocks(padded, count)


def _through(segment, blocks: _Blocks) -> _Blocks:
    """``segment``'s outputs of every block, as blocks again: a block's padding rows zero, as
    if the outputs' real rows had been cut into blocks anew (no concatenation, no slicing of
    tensors: a segment's call is the only copy)."""
    outputs = []
    for block, count in zip(blocks.padded, blocks.count, strict=True):
        output = np.array(segment(block))
        output[count:] = 0
        outputs.append(output)
    return _Blocks(outputs, blocks.count)


def _moments(blocks: _Blocks) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance per column, in float64 summed row by row (two passes), as
    float32 (the layer's variables). Block by block: a block's first row takes the sum of the
    rows before it, so the additions are those of one reduction over all rows, in the same order
    (numpy reduces a C-ordered array over its first axis from 0.0, row after row)."""
    n = sum(blocks.count)
    mean = _sum_in_order(block.astype(np.float64) for block in blocks.rows()) / n
    variance = _sum_in_order((block.astype(np.float64) - mean) ** 2 for block in blocks.rows()) / n
    return mean.astype(np.float32), variance.astype(np.float32)


def _sum_in_order(blocks) -> np.ndarray:
    """Column sums of the rows of float64 ``blocks`` (fresh arrays: each is changed), added
    row after row in the blocks' order."""
    total = None
    for block in blocks:
        if total is not None:
            block[0] += total
        total = np.add.reduce(block, axis=0)
    return total


def both_kinds(estimator, X) -> dict[str, np.ndarray]:
    """A fitted estimator's BN statistics of both kinds (:data:`BN_STATISTICS`), named
    ``moving/bn_1/moving_mean``, ``recomputed/bn_1/moving_mean``, ...: the ones it predicts with
    and the others (recomputed over ``X``, its training rows, the first ``measure_rows`` of them,
    where it kept the moving ones); empty without BN."""
    if not batch_norm_layers(estimator.model_):
        return {}
    current = current_statistics(estimator.model_)
    if estimator.bn_statistics == "recomputed":
        kinds = {"moving": estimator.moving_statistics_, "recomputed": current}
    else:
        kinds = {"moving": current, "recomputed": population_statistics(estimator.model_, X[: estimator.measure_rows])}
    return {f"{kind}/{name}": value for kind in BN_STATISTICS for name, value in kinds[kind].items()}


def of_kind(arrays: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """One kind's statistics out of :func:`both_kinds`' arrays, as :func:`install` takes them."""
    return {name.removeprefix(f"{kind}/"): value for name, value in arrays.items() if name.startswith(f"{kind}/")}
