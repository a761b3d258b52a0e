"""This machine's kernels against every CPU kind's committed fingerprint
(tools/cpu_fingerprint.py): kernels whose optimized HLO, x86 intrinsics or outside calls differ
are named, and so are those whose optimized IR differs where it allows LLVM to change a result
(fast-math flags, ``fmuladd``). What LLVM chose for this CPU otherwise (how a strict-IEEE loop
is vectorized and unrolled, how instructions are scheduled) is said, not failed: it cannot
change a bit. The reference fits' bytes are compared with every file by tests/test_cpu_vendor.py,
from the fits it runs anyway."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from bnlab.ml import xla_dump

from helpers import PROJECT, project_env

TOOL = PROJECT / "tools" / "cpu_fingerprint.py"
FOLDER = PROJECT / "tests" / "data" / "cpu_fingerprints"
COMMITTED = sorted(FOLDER.glob("*.json"))
COMPARED = ("optimized_hlo_sha256", "x86_intrinsics", "external_calls")


def load_module(name: str, path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool():
    return load_module("cpu_fingerprint", TOOL)


def kernel_differences(mine: dict, theirs: dict) -> tuple[list[str], list[str]]:
    """(kernels that differ in what :data:`COMPARED` holds, in IR that leaves LLVM freedom over
    results, or exist on one side only; kernels whose IR (strict IEEE here) or object code alone
    differs). The same optimized HLO means the same emitted IR and flags before LLVM's passes,
    so this machine's ``fp_freedoms`` stand for both sides'."""
    differ = sorted(set(mine) ^ set(theirs))
    said = []
    for label in sorted(set(mine) & set(theirs)):
        if any(mine[label][key] != theirs[label][key] for key in COMPARED):
            differ.append(label)
        elif mine[label]["ir_sha256"] != theirs[label]["ir_sha256"] and mine[label]["fp_freedoms"]:
            differ.append(label)
        elif mine[label]["ir_sha256"] != theirs[label]["ir_sha256"] or (
            mine[label]["object_sha256"] != theirs[label]["object_sha256"]
        ):
            said.append(label)
    return differ, said


def test_a_committed_fingerprint_exists_and_names_its_cpu():
    tool = load_tool()
    assert COMMITTED, "no CPU fingerprint committed: run `make fingerprint`"
    for path in COMMITTED:
        found = json.loads(path.read_text())
        assert path.name == tool.file_name(found["cpu"])
        assert set(found) == {"cpu", "glibc", "tensorflow", "numpy", "reference_fits", "kernels"}
        assert found["numpy"]["active"] == ["X86_V3"]  # numpy pinned to its AVX2 kernels
        assert all(not summary["x86_intrinsics"] for summary in found["kernels"].values())


def test_some_committed_fingerprint_holds_every_reference_fit():
    """So every fit of tests/vendor_fits.py is compared across CPU kinds somewhere."""
    fits = set(load_module("vendor_fits", PROJECT / "tests" / "vendor_fits.py").FITS)
    assert any(set(json.loads(path.read_text())["reference_fits"]) == fits for path in COMMITTED)


def test_the_cpu_identity_comes_from_the_first_processor():
    tool = load_tool()
    cpuinfo = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC 9B14\nflags\t\t: fpu sse4a avx2 fma\n\nprocessor\t: 1\nvendor_id\t: other\n"
    )
    cpu = tool.cpu_identity(cpuinfo)
    assert tool.file_name(cpu) == "AuthenticAMD-25-17.json"
    assert cpu["flags"] == ["avx2", "fma", "fpu", "sse4a"] and cpu["name"] == "AMD EPYC 9B14"


def test_kernel_differences_name_what_differs():
    same = {
        "object_sha256": "o",
        "optimized_hlo_sha256": "h",
        "ir_sha256": "i",
        "x86_intrinsics": [],
        "external_calls": ["powf"],
        "fp_freedoms": [],
    }
    summing = {**same, "fp_freedoms": ["reassoc"]}
    mine = {"a": same, "b": same, "c": same, "d": same, "f": same, "g": summing, "h": summing}
    theirs = {
        "a": same,
        "b": {**same, "object_sha256": "o2"},
        "c": {**same, "x86_intrinsics": ["llvm.x86.sse.rsqrt.ss"]},
        "e": same,
        "f": {**same, "ir_sha256": "i2", "object_sha256": "o2"},  # a strict loop vectorized otherwise
        "g": {**summing, "ir_sha256": "i2"},  # a reassociable sum vectorized otherwise: other bits
        "h": {**summing, "object_sha256": "o2"},
    }
    assert kernel_differences(mine, theirs) == (["d", "e", "c", "g"], ["b", "f", "h"])


def test_fp_freedoms_are_the_flags_that_let_llvm_change_a_result():
    def freedoms(ir: str) -> list[str]:
        return xla_dump.Kernel("0000.steps", "k", ir, b"", "").fp_freedoms()

    assert freedoms("  %3 = fmul <8 x float> %1, %2\n  tail call fastcc void @gemm(ptr %0)\n") == []
    assert freedoms("  %4 = fadd reassoc float %3, %2\n") == ["reassoc"]
    assert freedoms("  %5 = tail call fast float @llvm.vector.reduce.fadd.v8f32(float 0.0, <8 x float> %4)\n") == [
        "fast"
    ]
    assert freedoms("  %6 = fmul nnan contract float %1, %2\n") == ["contract", "nnan"]
    assert freedoms("  %7 = call float @llvm.fmuladd.f32(float %1, float %2, float %3)\n") == ["fmuladd"]


@pytest.fixture(scope="module")
def here(tmp_path_factory) -> dict:
    """This machine's kernels, compiled once for every committed file (half a minute, 2 idle cores)."""
    out = tmp_path_factory.mktemp("fingerprint") / "here.json"
    command = [sys.executable, str(TOOL), "--kernels-only", "--out", str(out)]
    subprocess.run(command, env=project_env(), check=True, capture_output=True)
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("committed", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_this_machine_compiles_every_kernel_as_every_committed_cpu_kind(committed, here):
    mine, theirs = here, json.loads(committed.read_text())
    if mine["glibc"] != theirs["glibc"] or mine["tensorflow"] != theirs["tensorflow"]:
        pytest.skip(
            f"{committed.name} was made with {theirs['glibc']}, TensorFlow {theirs['tensorflow']}; "
            f"here {mine['glibc']}, {mine['tensorflow']}: other kernels are expected"
        )
    differ, said = kernel_differences(mine["kernels"], theirs["kernels"])
    assert differ == [], f"kernels compiled otherwise than on {committed.stem}: {differ}"
    if said:
        warnings.warn(
            f"{len(said)} kernels' strict-IEEE IR or object code differs from {committed.stem}'s "
            f"(vectorized, unrolled or scheduled for this CPU): {said[:5]}",
            stacklevel=1,
        )
