"""Test-set metrics of one fitted classifier."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss


def evaluate(estimator, X: np.ndarray, y: np.ndarray) -> dict:
    """Loss (cross-entropy), accuracy and the predictions. A network that diverged (NaN or
    infinite outputs, as a deep BN network does after a step on exploding gradients) has no
    loss: NaN; its predictions are still counted."""
    proba = estimator.predict_proba(X)
    predicted = estimator.classes_[proba.argmax(axis=1)]
    diverged = not np.isfinite(proba).all()
    return {
        "test_loss": float("nan") if diverged else float(log_loss(y, proba, labels=estimator.classes_)),
        "test_accuracy": float(accuracy_score(y, predicted)),
        "predicted": predicted,
    }
