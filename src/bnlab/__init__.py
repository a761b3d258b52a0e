"""bnlab: does batch normalization help? A reproducible MNIST experiment.

``KerasMLPClassifier`` is imported lazily so that the data stages never pay for TensorFlow.
"""

from bnlab.core import numpy_dispatch

numpy_dispatch.pin()  # before anything loads numpy

__version__ = "0.1.0"
__all__ = ["KerasMLPClassifier", "__version__"]


def __getattr__(name: str):
    if name == "KerasMLPClassifier":
        from bnlab.ml.estimator import KerasMLPClassifier

        return KerasMLPClassifier
    raise AttributeError(f"module 'bnlab' has no attribute {name!r}")
