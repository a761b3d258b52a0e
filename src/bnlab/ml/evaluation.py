"""Test-set metrics of one fitted classifier."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score

from bnlab.ml.bn_statistics import current_statistics, install, of_kind
from bnlab.ml.hyperparams import BN_STATISTICS


def evaluate(estimator, X: np.ndarray, y: np.ndarray) -> dict:
    """Loss (cross-entropy), accuracy and the predictions. A network that diverged (NaN or
    infinite outputs, as a deep BN network does after a step on exploding gradients) has no
    loss: NaN; its predictions are still counted. The loss is read off the compiled
    log-softmax (:meth:`~bnlab.ml.estimator.KerasMLPClassifier.predict_log_proba`), not
    ``log_loss`` of the probabilities: numpy's ``log`` picks its kernel by the CPU."""
    log_proba = estimator.predict_log_proba(X)
    predicted = estimator.classes_[log_proba.argmax(axis=1)]
    diverged = not np.isfinite(log_proba).all()
    index = np.searchsorted(estimator.classes_, y)
    return {
        "test_loss": float("nan") if diverged else float(-log_proba[np.arange(len(y)), index].mean()),
        "test_accuracy": float(accuracy_score(y, predicted)),
        "predicted": predicted,
    }


def accuracy_by_statistics(estimator, statistics: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> dict:
    """Test accuracy with each kind of BN statistics (``test_accuracy_moving``,
    ``test_accuracy_recomputed``) from :func:`bnlab.ml.bn_statistics.both_kinds`' arrays; the
    estimator keeps the statistics it had."""
    own = current_statistics(estimator.model_)
    found = {}
    try:
        for kind in BN_STATISTICS:
            install(estimator.model_, of_kind(statistics, kind))
            found[f"test_accuracy_{kind}"] = evaluate(estimator, X, y)["test_accuracy"]
    finally:
        install(estimator.model_, own)
    return found
