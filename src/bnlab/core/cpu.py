"""What this machine's CPU is, read from /proc/cpuinfo: the class of CPUs that compute bnlab's
pinned numbers (the per-job cache's key) and the exact model (the XLA program cache's key)."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The kernels are pinned to AVX2 with FMA (bnlab.ml.tf_runtime), so every x86-64 CPU that has
# both computes the same bytes, AVX-512 or not, AMD's or Intel's (tests/test_same_bytes.py,
# tests/test_cpu_vendor.py): the class names those, not the CPU. A CPU without them runs other
# code (glibc's libm too picks its FMA kernels by the CPU), and is a class of its own.
PINNED_ISA = ("avx2", "fma")


def first_processor(cpuinfo: Path = CPUINFO) -> dict[str, str]:
    """The first processor's fields in ``cpuinfo`` (empty where it cannot be read)."""
    try:
        first = cpuinfo.read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}


def cpu_class(cpuinfo: Path = CPUINFO) -> str:
    """``x86_64+avx2+fma`` on every CPU whose numbers are the pinned ones; else the machine and
    whichever of those features it has (``unknown`` where the flags cannot be read)."""
    fields = first_processor(cpuinfo)
    if "flags" not in fields:
        return f"{platform.machine()}:unknown"
    present = [name for name in PINNED_ISA if name in fields["flags"].split()]
    if platform.machine() == "x86_64" and present == list(PINNED_ISA):
        return "+".join(["x86_64", *PINNED_ISA])
    return f"{platform.machine()}:{','.join(present) or 'none'}"


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """``GenuineIntel family 6 model 167 avx512f``, say: the vendor, family and model, and the
    widest vector extension, which decide the code a compiler generates for this CPU."""
    fields = first_processor(cpuinfo)
    flags = fields.get("flags", "").split()
    widest = next((name for name in ("avx512f", "avx2", "avx") if name in flags), "none")
    return (
        f"{fields.get('vendor_id', platform.machine())} family {fields.get('cpu family', '?')} "
        f"model {fields.get('model', '?')} {widest}"
    )
