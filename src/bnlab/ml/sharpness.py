"""Sharpness: the top eigenvalue λ_max of the training loss's Hessian with respect to every
trainable variable, on a fixed batch (Ghorbani et al. 2019; Cohen et al. 2021, who compare it
with 2/η, the largest curvature gradient descent at rate η is stable on).

λ_max comes from Lanczos iterations on Hessian–vector products. The product is one
XLA-compiled function over the configuration's template (:mod:`bnlab.ml.compiled`): the
gradient of ⟨∇L(w), v⟩, two backward passes through :func:`bnlab.ml.fixed_order.fixed_order_matmul`
(whose gradient is itself, so its second derivative keeps the fixed order). It is stateless, as
:mod:`bnlab.ml.geometry`'s loss is: BN normalizes by the batch's statistics (training mode)
and its moving averages are read, never written, so a measurement leaves training as it was.

The Lanczos vectors live in NumPy float64: the start vector drawn from a seed, every inner
product an elementwise product summed by numpy's fixed pairwise order, full
reorthogonalization, and the tridiagonal matrix's largest eigenvalue found by bisection on its
Sturm sequence in plain Python floats (LAPACK's kernels are picked by the CPU, and a different
last bit would be a different number on another machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bnlab.ml.compiled import template_for
from bnlab.ml.geometry import norm as norm_of
from bnlab.ml.tf_runtime import keras, tf

# Lanczos's largest Ritz value converges first, geometrically in the gap below λ_max (Saad,
# Numerical Methods for Large Eigenvalue Problems, 2011, ch. 6); 20 steps find a 44-weight
# network's λ_max to 1e-3 (tests/test_sharpness.py).
LANCZOS_ITERATIONS = 20


class SharpnessProbe:
    """Rows (:data:`bnlab.ml.probe_rows.SHARPNESS_COLUMNS`): λ_max of the training loss on a fixed
    batch (``x``, ``y``: the first training images) just after each step of ``steps``, and that
    loss, in ``rows`` and to ``on_record``: a batch callback of
    :class:`bnlab.ml.estimator.KerasMLPClassifier` at exactly ``steps``. It reads the weights
    only, so training goes on exactly as without it. ``seed``: the Lanczos start vector's (the
    job's seed: the same start at every step of one run)."""

    def __init__(self, steps: Sequence[int], x, y, seed: int, on_record: Callable[[int, dict], None] | None = None):
        self.watched = tuple(sorted({int(s) for s in steps}))
        self.batch_steps = self.watched
        self.x, self.y = np.asarray(x, np.float32), np.asarray(y)
        self.seed, self.on_record = int(seed), on_record
        self.rows: list[dict] = []

    def tables(self) -> dict[str, list[dict]]:
        """The rows measured, by file (:data:`bnlab.ml.probe_rows.TABLES`)."""
        return {"sharpness.csv": self.rows}

    def set_model(self, model) -> None:
        self.model = model

    def on_train_batch_begin(self, step: int, logs) -> None:
        pass

    def on_train_batch_end(self, step: int, logs=None) -> None:
        row = {
            "step": step,
            "lambda_max": top_hessian_eigenvalue(self.model, self.x, self.y, seed=self.seed),
            "train_loss": training_loss(self.model, self.x, self.y),
        }
        self.rows.append(row)
        if self.on_record is not None:
            self.on_record(step, row)


def training_loss(model: keras.Model, x, y) -> float:
    """The mean cross-entropy on (x, y) in training mode (BN on the batch's statistics): the
    loss whose Hessian :func:`top_hessian_eigenvalue` measures."""
    template = template_for(model)
    loss = template.function(("training_loss",), lambda: _compile_loss(template.model))
    trainable = [v.numpy() for v in model.trainable_variables]
    state = [v.numpy() for v in model.non_trainable_variables]
    return float(loss(trainable, state, x, y).numpy())


def top_hessian_eigenvalue(model: keras.Model, x, y, iterations: int = LANCZOS_ITERATIONS, seed: int = 0) -> float:
    """λ_max of the mean training loss's Hessian at ``model``'s weights on the batch (x, y)."""
    template = template_for(model)
    product = template.function(("hessian_vector",), lambda: _compile_hessian_vector(template.model))
    trainable = [v.numpy() for v in model.trainable_variables]
    state = [v.numpy() for v in model.non_trainable_variables]
    shapes = [w.shape for w in trainable]

    def hessian_times(vector: np.ndarray) -> np.ndarray:
        parts = [part.astype(np.float32) for part in unflatten(vector, shapes)]
        return flatten([h.numpy() for h in product(trainable, state, x, y, parts)])

    return lanczos_top_eigenvalue(hessian_times, sum(int(np.prod(s)) for s in shapes), iterations, seed)


def lanczos_top_eigenvalue(
    matrix_times: Callable[[np.ndarray], np.ndarray], size: int, iterations: int, seed: int
) -> float:
    """The largest eigenvalue of the symmetric matrix ``matrix_times`` applies, from at most
    ``iterations`` Lanczos steps started at a Gaussian vector drawn from ``seed``."""
    start = np.random.default_rng(seed).standard_normal(size)
    basis = [start / norm(start)]
    diagonal: list[float] = []
    off_diagonal: list[float] = []
    for _ in range(min(iterations, size)):
        v = basis[-1]
        w = np.asarray(matrix_times(v), np.float64)
        diagonal.append(inner(w, v))
        for u in basis + basis:  # twice: full reorthogonalization, as Lanczos needs in floating point
            w = w - inner(w, u) * u
        length = norm(w)
        if length <= 1e-12 * max(abs(d) for d in diagonal) or len(diagonal) == size:
            break  # an invariant subspace: its eigenvalues are exact
        off_diagonal.append(length)
        basis.append(w / length)
    return tridiagonal_top_eigenvalue(diagonal, off_diagonal[: len(diagonal) - 1])


def tridiagonal_top_eigenvalue(diagonal: Sequence[float], off_diagonal: Sequence[float]) -> float:
    """The largest eigenvalue of the symmetric tridiagonal matrix, by bisection on the number of
    eigenvalues below a point (Sturm's sequence), within Gershgorin's bounds, to the last bit."""
    d, e = [float(a) for a in diagonal], [float(b) for b in off_diagonal]
    radius = [abs(e[i - 1]) if i else 0.0 for i in range(len(d))]
    radius = [r + (abs(e[i]) if i < len(e) else 0.0) for i, r in enumerate(radius)]
    low, high = min(a - r for a, r in zip(d, radius)), max(a + r for a, r in zip(d, radius))
    while True:
        middle = 0.5 * (low + high)
        if middle in (low, high):
            return high
        if eigenvalues_below(d, e, middle) == len(d):
            high = middle
        else:
            low = middle


def eigenvalues_below(d: list[float], e: list[float], point: float) -> int:
    """How many eigenvalues of the symmetric tridiagonal matrix lie below ``point``."""
    count, q = 0, 1.0
    for i, a in enumerate(d):
        q = a - point - (e[i - 1] ** 2 / q if i else 0.0)
        if q == 0.0:
            q = -1e-300  # the point is an eigenvalue of a leading block: count it as below
        count += q < 0
    return count


def inner(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b))


def norm(a: np.ndarray) -> float:
    return norm_of([a])


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(a).astype(np.float64) for a in arrays])


def unflatten(vector: np.ndarray, shapes: Sequence[tuple]) -> list[np.ndarray]:
    parts, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        parts.append(vector[start : start + size].reshape(shape))
        start += size
    return parts


def _compile_loss(model):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=True, autograph=False)
    def loss(trainable, state, x, y):
        logits, _ = model.stateless_call(trainable, state, x, training=True)
        return loss_fn(y, logits)

    return loss


def _compile_hessian_vector(model):
    """H·v at given weights on a batch, in training mode, as one XLA-compiled function over the
    template ``model``; stateless like :func:`bnlab.ml.geometry._compile_loss_gradient`."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=True, autograph=False)
    def hessian_vector(trainable, state, x, y, vector):
        with tf.GradientTape() as outer:
            outer.watch(trainable)
            with tf.GradientTape() as inner_tape:
                inner_tape.watch(trainable)
                logits, _ = model.stateless_call(trainable, state, x, training=True)
                loss = loss_fn(y, logits)
            gradient = inner_tape.gradient(loss, trainable)
            along = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(gradient, vector)])
        return outer.gradient(along, trainable)

    return hessian_vector
