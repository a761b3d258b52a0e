"""A trained network's log-probabilities and probabilities, through one XLA-compiled function
per configuration and shape, and the loss and accuracy that the per-epoch history holds.
``model.predict`` would start Keras's progress and callback machinery per call; a compiled
inference function on big batches is several times faster."""

from __future__ import annotations

import numpy as np

from bnlab.ml.compiled import template_for
from bnlab.ml.fixed_order import Inference, compile_inference


class NetworkInference:
    """``infer(X, rows)`` → :class:`~bnlab.ml.fixed_order.Inference` of one network: ``rows``
    rows per block (:func:`compile_inference`), compiled once per process for its configuration
    (:mod:`bnlab.ml.compiled`)."""

    def __init__(self, model):
        self.model = model
        self._template = template_for(model)

    def __call__(self, X, rows: int) -> Inference:
        network = self._template.model
        infer = self._template.function(("inference", rows), lambda: compile_inference(network, rows))
        with self._template.loaded(self.model):
            return infer(X)


def inference_for(estimator) -> NetworkInference:
    """A fitted estimator's inference, kept on it (``_inference``) until its network changes."""
    found = getattr(estimator, "_inference", None)
    if found is None or found.model is not estimator.model_:
        found = estimator._inference = NetworkInference(estimator.model_)
    return found


def loss_accuracy(log_proba: np.ndarray, y_index: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of float64 ``log_proba`` against class indices (sums
    and argmax only: no CPU-chosen ``exp`` or ``log`` here)."""
    loss = -log_proba[np.arange(len(y_index)), y_index].mean()
    accuracy = (log_proba.argmax(axis=1) == y_index).mean()
    return float(loss), float(accuracy)
