"""A trained network's logits, through one XLA-compiled function per configuration and shape,
and the loss and accuracy that the per-epoch history holds. ``model.predict`` would start
Keras's progress and callback machinery per call; a compiled inference function on big batches
is several times faster."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from bnlab.ml.compiled import template_for
from bnlab.ml.fixed_order import compile_logits


class Logits:
    """``logits(X, rows)`` of one network: ``rows`` rows per block (:func:`compile_logits`),
    compiled once per process for its configuration (:mod:`bnlab.ml.compiled`)."""

    def __init__(self, model, n_features: int, n_classes: int):
        self.model, self.n_features, self.n_classes = model, n_features, n_classes
        self._template = template_for(model)

    def __call__(self, X, rows: int) -> np.ndarray:
        network = self._template.model
        logits = self._template.function(("logits", rows), lambda: compile_logits(network, rows))
        with self._template.loaded(self.model):
            return logits(X)


def loss_accuracy(logits: np.ndarray, y_index: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy (in float64) and accuracy of ``logits`` against class indices."""
    logits = logits.astype(np.float64)
    log_proba = log_softmax(logits, axis=1)
    loss = -log_proba[np.arange(len(y_index)), y_index].mean()
    accuracy = (logits.argmax(axis=1) == y_index).mean()
    return float(loss), float(accuracy)
