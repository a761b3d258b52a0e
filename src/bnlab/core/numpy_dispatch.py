"""numpy's CPU dispatch, pinned before numpy loads: the same float64 ``exp``, ``log``, ``log10``
and ``power`` bits on every x86-64 CPU with AVX2 and FMA.

numpy 2.4 compiles those functions for several instruction sets and picks one per CPU at
import (``X86_V3`` is AVX2 with FMA; ``X86_V4``, ``AVX512_ICL`` and ``AVX512_SPR`` are AVX-512
levels, with SVML's ``log10`` and ``power``). The AVX-512 kernels give other last bits: with
them turned off, scipy's softmax changed its bytes on both AVX-512 CPUs measured here, and the
report's log10 geometric means go through the same kernels. ``NPY_DISABLE_CPU_FEATURES``
naming the AVX-512 targets makes every such CPU run the AVX2 ones, which an AVX2-only CPU runs
anyway. numpy reads the variable once, when it loads, so :func:`pin` runs from
``bnlab/__init__.py``, first thing in every bnlab process (stages, workers, ``bnlab`` commands),
and children inherit it. In a process that loaded numpy before bnlab (a notebook, pytest) it
cannot act: :func:`active_targets` says what runs, and each run records it.

Outputs that leave the estimator (``predict_proba``, the loss) do not rely on this: their
``exp`` and ``log`` run in XLA's compiled code (:mod:`bnlab.ml.fixed_order`).
"""

from __future__ import annotations

import os
import sys

VARIABLE = "NPY_DISABLE_CPU_FEATURES"
# numpy 2.4's dispatch targets above X86_V3 (``numpy._core._multiarray_umath.__cpu_dispatch__``;
# tests/test_cpu_vendor.py checks the list against the installed numpy).
AVX512_TARGETS = ("X86_V4", "AVX512_ICL", "AVX512_SPR")


def pin() -> None:
    """Turn numpy's AVX-512 kernels off for this process and its children, if numpy has not
    loaded yet. Set, not defaulted: a value of the user's would change the numbers silently."""
    if "numpy" not in sys.modules:
        os.environ[VARIABLE] = " ".join(AVX512_TARGETS)


def active_targets() -> list[str]:
    """The dispatch targets numpy runs in this process (``X86_V3`` alone where pinned)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [target for target in __cpu_dispatch__ if __cpu_features__.get(target)]
