"""Test-set metrics of one fitted classifier."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss


def evaluate(estimator, X: np.ndarray, y: np.ndarray) -> dict:
    """Loss (cross-entropy), accuracy and the predictions."""
    proba = estimator.predict_proba(X)
    predicted = estimator.classes_[proba.argmax(axis=1)]
    return {
        "test_loss": float(log_loss(y, proba, labels=estimator.classes_)),
        "test_accuracy": float(accuracy_score(y, predicted)),
        "predicted": predicted,
    }
