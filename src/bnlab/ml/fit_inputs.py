"""What the estimator's ``fit`` takes besides its params: the input types it keeps, the seed an
int or a RandomState gives, and validation data checked against the training labels."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

# Raw pixels stay uint8 until a batch is drawn (a quarter of float32's memory per worker); any
# other input becomes float32. Both reach the network as the same float32 values.
INPUT_DTYPES = [np.float32, np.uint8]


def seed_of(random_state) -> int:
    """The seed of weights and shuffling: the int given, or one drawn from a RandomState (None:
    numpy's global one)."""
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def encode_validation(estimator, validation_data):
    """``(X_val, class indices)`` of a fitted-to-``y`` estimator's ``validation_data``, or None;
    labels ``y`` did not have are refused by name."""
    if validation_data is None:
        return None
    X_val, y_val = validation_data
    X_val = validate_data(estimator, X_val, reset=False, dtype=INPUT_DTYPES)
    y_val = np.asarray(y_val)
    unknown = np.setdiff1d(y_val, estimator.classes_)
    if unknown.size:
        raise ValueError(f"validation_data has labels not seen in y: {unknown[:5].tolist()}")
    return X_val, np.searchsorted(estimator.classes_, y_val).astype(np.int32)
