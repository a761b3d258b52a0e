"""What XLA compiled in a process, read from its dump folder kernel by kernel: the optimized
LLVM IR, the object code, the x86 intrinsics the IR calls and the functions the object needs
from outside (libm's ``powf``, say). Used by the tests that keep CPU-chosen arithmetic out of
the compiled code and by ``tools/cpu_fingerprint.py``.

XLA reads ``XLA_FLAGS`` at its first compile in a process, so :func:`dump_to` must run before
any function is compiled (importing :mod:`tf_runtime` first is fine).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from bnlab.ml import xla_cache

IR_SUFFIX = ".ir-with-opt.ll"
OBJECT_INFIX, OBJECT_SUFFIX = "obj-file", ".o"  # <module>.obj-file.<kernel>.o
OPTIMIZED_HLO_SUFFIX = ".cpu_after_optimizations.txt"
# The hardware's reciprocal (square-root) estimates: their bits differ between vendors, and the
# Newton steps XLA adds to them differ too (bnlab.ml.tf_runtime).
ESTIMATES = re.compile(r"llvm\.x86\.\S*(rsqrt|rcp)")
# HLO op metadata names the Python source file (a path that differs per checkout): not the program
_METADATA = re.compile(r", metadata=\{[^}]*\}")
_DECLARED = re.compile(r"^declare [^@]*@([\w.$]+)\(", re.M)
# LLVM may change a floating-point result only where the IR allows it: fast-math flags on an
# instruction (reassociate a sum, contract to FMA, approximate...) or ``llvm.fmuladd`` (fuse
# if the target likes). Without them, its passes keep every IEEE result.
_FP_INSTRUCTION = r"(?:fadd|fsub|fmul|fdiv|frem|fneg|fcmp|call|select|phi)"
_FLAG = r"(?:fast|reassoc|nnan|ninf|nsz|arcp|contract|afn)"
_FAST_MATH_FLAGS = re.compile(rf"= (?:\w+ )*?{_FP_INSTRUCTION}((?: {_FLAG})+) ")
_MAY_FUSE = re.compile(r"@llvm\.fmuladd\.")
# module_0003.a_inference_steps_1643__XlaMustCompile_..._.22.<kernel>.ir-with-opt.ll: the
# function's trace number and config hash vary with what ran before; its name and order do not.
_MODULE = re.compile(
    r"^module_(\d+)\.a_inference_(.+?)_\d+__XlaMustCompile_true_config_proto_\d+_executor_type_\d+_\.\d+$"
)


def dump_to(folder: Path) -> None:
    """Make XLA write every program it compiles from now on into ``folder`` (compiling each: no
    program comes from the cache, whose programs would not be dumped)."""
    xla_cache.turn_off()
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={folder} --xla_dump_hlo_as_text"


@dataclass(frozen=True)
class Kernel:
    """One compiled kernel: ``program`` (``0003.steps``: the compile's order and function) and
    ``name`` (XLA's kernel name) identify it across processes running the same code."""

    program: str
    name: str
    ir: str
    object_code: bytes
    optimized_hlo: str

    @property
    def label(self) -> str:
        return f"{self.program}/{self.name}"

    def x86_intrinsics(self) -> list[str]:
        return sorted({name for name in _DECLARED.findall(self.ir) if name.startswith("llvm.x86.")})

    def estimate_intrinsics(self) -> list[str]:
        return [name for name in self.x86_intrinsics() if ESTIMATES.search(name)]

    def external_calls(self) -> list[str]:
        return undefined_symbols(self.object_code)

    def fp_freedoms(self) -> list[str]:
        """The fast-math flags in the optimized IR, and ``fmuladd`` if it may fuse: empty means
        strict IEEE IR, whose LLVM passes (vectorizing, interleaving, unrolling, all chosen by
        the CPU's cost model) keep every result's bits."""
        flags = {flag for found in _FAST_MATH_FLAGS.findall(self.ir) for flag in found.split()}
        return sorted(flags | ({"fmuladd"} if _MAY_FUSE.search(self.ir) else set()))

    def summary(self) -> dict:
        """What ``tools/cpu_fingerprint.py`` records of it."""
        digest = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
        return {
            "object_sha256": digest(self.object_code),
            "ir_sha256": digest(self.ir.encode()),
            "optimized_hlo_sha256": digest(_METADATA.sub("", self.optimized_hlo).encode()),
            "x86_intrinsics": self.x86_intrinsics(),
            "external_calls": self.external_calls(),
            "fp_freedoms": self.fp_freedoms(),
        }


def program_label(module: str) -> str:
    """``module_0003.a_inference_steps_1643__XlaMustCompile_..._.22`` → ``0003.steps``."""
    found = _MODULE.match(module)
    return f"{found.group(1)}.{found.group(2)}" if found else module


def kernels(folder: Path) -> list[Kernel]:
    """Every kernel in ``folder`` that has optimized IR, in name order."""
    found = []
    for ir_path in sorted(Path(folder).glob(f"*{IR_SUFFIX}")):
        stem = ir_path.name[: -len(IR_SUFFIX)]
        module, name = _split(stem, folder)
        object_path = ir_path.with_name(f"{module}.{OBJECT_INFIX}.{name}{OBJECT_SUFFIX}")
        hlo_path = Path(folder) / f"{module}{OPTIMIZED_HLO_SUFFIX}"
        found.append(
            Kernel(
                program_label(module),
                name,
                ir_path.read_text(),
                object_path.read_bytes() if object_path.exists() else b"",
                hlo_path.read_text() if hlo_path.exists() else "",
            )
        )
    return found


def _split(stem: str, folder: Path) -> tuple[str, str]:
    """A kernel file's stem into its module (the one whose optimized HLO is in ``folder``) and
    the kernel's own name."""
    parts = stem.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if (Path(folder) / f"{module}{OPTIMIZED_HLO_SUFFIX}").exists():
            return module, ".".join(parts[cut:])
    return parts[0], ".".join(parts[1:])


def undefined_symbols(elf: bytes) -> list[str]:
    """The symbols an ELF64 relocatable object needs from elsewhere (its ``U`` symbols)."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF":
        return []
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strings_offset = sections[link][4]
        for start in range(offset, offset + size, entsize):
            name_at, _, _, section = struct.unpack_from("<IBBH", elf, start)
            if section == 0 and name_at:
                end = elf.index(b"\0", strings_offset + name_at)
                names.add(elf[strings_offset + name_at : end].decode())
    return sorted(names)
