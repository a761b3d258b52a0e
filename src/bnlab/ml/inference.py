"""A trained network's logits, in batches through one compiled function, and the loss and
accuracy that the per-epoch history holds. ``model.predict`` would start Keras's progress and
callback machinery per call; a compiled inference function on big batches is several times
faster."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from bnlab.ml.tf_runtime import tf


class Logits:
    """``logits(X)`` of one network, ``batch_size`` rows per call of a function compiled once."""

    def __init__(self, model, n_features: int, n_classes: int):
        self.model, self.n_classes = model, n_classes

        @tf.function(input_signature=[tf.TensorSpec([None, n_features], tf.float32)])
        def compiled(x):
            return model(x, training=False)

        self._compiled = compiled

    def __call__(self, X, batch_size: int) -> np.ndarray:
        out = [self._compiled(tf.cast(X[i : i + batch_size], tf.float32)).numpy()
               for i in range(0, len(X), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)


def loss_accuracy(logits: np.ndarray, y_index: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy (in float64) and accuracy of ``logits`` against class indices."""
    logits = logits.astype(np.float64)
    log_proba = log_softmax(logits, axis=1)
    loss = -log_proba[np.arange(len(y_index)), y_index].mean()
    accuracy = (logits.argmax(axis=1) == y_index).mean()
    return float(loss), float(accuracy)
