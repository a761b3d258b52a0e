"""Import TensorFlow the way bnlab needs it: quiet, with the same bytes on every x86-64 CPU with
AVX2 and FMA, AMD's and Intel's alike, and fixed thread counts.

Import this module (not ``tensorflow``) first: TensorFlow reads these settings once, when it
loads or when its runtime starts. What would otherwise depend on the machine, and what pins it:

- TensorFlow's own matrix products (outside XLA) call oneDNN's sgemm, which picks kernels by
  the CPU's instruction set at run time, whatever ``TF_ENABLE_ONEDNN_OPTS`` says (measured:
  ``ONEDNN_MAX_CPU_ISA=AVX2`` changed the weights on an AVX-512 machine).
  ``TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL=0`` makes them Eigen's own, compiled into the
  wheel for AVX without FMA. Eigen still reads the L1 size at run time to cut long sums into
  blocks: :mod:`bnlab.ml.fixed_order` keeps every sum below the smallest such block. XLA's dots
  are YNNPACK's (see the vendor below).
- XLA's generated code (the training loop and inference are compiled with XLA): ``XLA_FLAGS``
  pins the instruction set to AVX2 and turns off the libraries and shortcuts that choose code by
  the CPU (XNNPACK, oneDNN, fast math, platform-dependent math) and multi-threaded Eigen.
- The CPU's vendor. XLA compiles ``rsqrt`` (every normalization layer's 1/sqrt(var + eps)) to
  the hardware estimate (``vrsqrtps``) plus Newton steps: one step when LLVM's feature string
  holds ``+sse4a`` (AMD), two otherwise (``xla/codegen/intrinsic/rsqrt.cc``), so an AMD and an
  Intel CPU trained other BN weights. ``--xla_cpu_enable_platform_dependent_math=false`` does
  not reach that code; the backend option ``xla_cpu_disable_platform_dependent_math`` does:
  ``sqrt`` then a division, both exactly rounded, and no estimate instruction left
  (``tests/test_cpu_vendor.py`` checks the optimized IR and plays the other vendor). It also
  puts XLA's dots (YNNPACK's) in their consistent-arithmetic mode.
- oneDNN's fused TensorFlow kernels: off (``TF_ENABLE_ONEDNN_OPTS=0``).
- Threads: one intra-op and one inter-op thread (``BNLAB_TF_THREADS`` overrides; for these
  small matrices one is also the fastest, and parallel jobs use the other cores).
- ``enable_op_determinism``: TensorFlow refuses ops that have no deterministic kernel
  (``BNLAB_OP_DETERMINISM=0`` turns it off).

Compiled programs are kept on disk for the next process (:mod:`bnlab.ml.xla_cache`), keyed by
these settings and the CPU; not by the served model's copy of this file (MLflow's
``code_paths``), which imports nothing of bnlab.

These are set, not defaulted: a value the user had set would make the numbers machine-dependent
without saying so. ``tests/test_same_bytes.py`` checks that oneDNN's instruction-set caps and
the thread settings leave the weights and predictions unchanged.
"""

from __future__ import annotations

import os

PINNED_ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TENSORFLOW_USE_CUSTOM_CONTRACTION_KERNEL": "0",
    "XLA_FLAGS": " ".join(
        [
            "--xla_cpu_max_isa=AVX2",
            "--xla_cpu_prefer_vector_width=256",
            "--xla_cpu_use_xnnpack=false",
            "--xla_cpu_use_onednn=false",
            "--xla_cpu_enable_fast_math=false",
            "--xla_cpu_enable_platform_dependent_math=false",
            "--xla_cpu_multi_thread_eigen=false",
            "--xla_backend_extra_options=xla_cpu_disable_platform_dependent_math",
        ]
    ),
}
# Fatal messages only: loading each cached XLA program, TensorFlow first tries to read the binary
# file as text and logs the parser's complaint as an error (tsl's ReadTextOrBinaryProto), once
# per program and job. Errors that matter raise Python exceptions. 0 shows everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.update(PINNED_ENVIRONMENT)
if __name__.startswith("bnlab."):  # not in the served model's copy of this file, which stands alone
    from bnlab.ml import xla_cache

    xla_cache.configure()  # keyed by XLA_FLAGS: after they are pinned

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
        **{name: os.environ.get(name, "") for name in PINNED_ENVIRONMENT},
        "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
        "op_determinism": "on" if OP_DETERMINISM else "off",
    }


__all__ = ["keras", "tf", "runtime_settings", "PINNED_ENVIRONMENT"]
