"""Import TensorFlow the way bnlab needs it: quiet, deterministic, with fixed thread counts.

Import this module (not ``tensorflow``) first. Settings that TensorFlow reads only once, at
import or when its runtime starts, are made here:

- ``TF_ENABLE_ONEDNN_OPTS=0``: oneDNN's fused kernels pick their summation order by CPU
  features, so results would differ between machines; off unless the user set it.
- One intra-op and one inter-op thread (``BNLAB_TF_THREADS`` overrides): a fixed reduction
  order, and for these small matrices one thread is also the fastest (see the README).
- ``enable_op_determinism``: TensorFlow refuses ops that have no deterministic kernel
  (``BNLAB_OP_DETERMINISM=0`` turns it off).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

THREADS = int(os.environ.get("BNLAB_TF_THREADS", "1"))
OP_DETERMINISM = os.environ.get("BNLAB_OP_DETERMINISM", "1") != "0"


def _configure() -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    except RuntimeError:
        pass  # the runtime had started already (TensorFlow used before bnlab): keep its setting
    if OP_DETERMINISM:
        tf.config.experimental.enable_op_determinism()


_configure()
# Each fit compiles fresh functions for its fresh model; TensorFlow's "retracing" warning
# about that is noise here.
tf.get_logger().setLevel("ERROR")


def runtime_settings() -> dict[str, str]:
    """What decides the numbers, to record beside each run."""
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
        "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
        "op_determinism": "on" if OP_DETERMINISM else "off",
    }


__all__ = ["keras", "tf", "runtime_settings"]
