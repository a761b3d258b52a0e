"""The hidden layers' kernels as a scale-invariant network's optimizer sees them: each kernel's
norm ‖w‖ and its angular update, the angle between w just before and just after one optimizer
step (van Laarhoven 2017; Hoffer et al. 2018; Wan et al. 2021).

A Dense kernel whose outputs BN normalizes is scale-invariant: the loss does not change when w is
multiplied by a constant, so its gradient is orthogonal to w and shrinks as 1/‖w‖. What moves
the network is then the direction of w, and the rate it moves at is the angular update (or the
effective learning rate η/‖w‖²), not η itself.

:class:`WeightNormProbe` is a batch callback of :class:`bnlab.ml.estimator.KerasMLPClassifier`
(``batch_steps``): it copies the hidden kernels before each watched step and compares after
it. It reads the weights only, so training goes on exactly as without it. The norms and angles
are NumPy's in float64, from float32 weights that are the same bytes on every CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bnlab.ml.model import dense_name


class WeightNormProbe:
    """Rows (:data:`bnlab.ml.probe_rows.WEIGHT_NORM_COLUMNS`) for each hidden layer's kernel
    at each step of ``steps``: its norm after the step and its angular update in that step,
    in ``rows`` and to ``on_record``."""

    def __init__(self, steps: Sequence[int], n_hidden: int, on_record: Callable[[int, list[dict]], None] | None = None):
        self.batch_steps = tuple(sorted({int(s) for s in steps}))
        self.n_hidden, self.on_record = int(n_hidden), on_record
        self.rows: list[dict] = []

    def tables(self) -> dict[str, list[dict]]:
        """The rows measured, by file (:data:`bnlab.ml.probe_rows.TABLES`)."""
        return {"weight_norms.csv": self.rows}

    def set_model(self, model) -> None:
        self._kernels = [model.get_layer(dense_name(layer)).kernel for layer in range(1, self.n_hidden + 1)]

    def on_train_batch_begin(self, step: int, logs) -> None:
        self._before = [kernel.numpy() for kernel in self._kernels]

    def on_train_batch_end(self, step: int, logs=None) -> None:
        rows = [
            {"step": step, "layer": layer, "kernel_norm": kernel_norm(after), "angular_update": angle(before, after)}
            for layer, (before, after) in enumerate(zip(self._before, (k.numpy() for k in self._kernels)), start=1)
        ]
        self._before = None
        self.rows += rows
        if self.on_record is not None:
            self.on_record(step, rows)


def kernel_norm(kernel: np.ndarray) -> float:
    """‖w‖₂ over every entry, summed in float64."""
    return float(np.sqrt(np.sum(np.square(kernel, dtype=np.float64))))


def angle(before: np.ndarray, after: np.ndarray) -> float:
    """The angle in radians between two kernels as vectors: 2·atan2(‖a − b‖, ‖a + b‖) of their
    unit vectors, exact for the small angles one step makes, where arccos of the cosine loses
    half its digits."""
    a = before.astype(np.float64).ravel() / kernel_norm(before)
    b = after.astype(np.float64).ravel() / kernel_norm(after)
    return float(2 * np.arctan2(np.sqrt(np.sum(np.square(a - b))), np.sqrt(np.sum(np.square(a + b)))))
