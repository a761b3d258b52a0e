"""This machine against every CPU kind's committed fingerprint (tools/cpu_fingerprint.py): the
reference fits' bytes must be equal; kernels whose optimized HLO or IR, x86 intrinsics or
outside calls differ are named; object code that differs with all of those equal (instruction
scheduling for another CPU) is said, not failed."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from helpers import PROJECT, project_env

TOOL = PROJECT / "tools" / "cpu_fingerprint.py"
FOLDER = PROJECT / "tests" / "data" / "cpu_fingerprints"
COMMITTED = sorted(FOLDER.glob("*.json"))
COMPARED = ("optimized_hlo_sha256", "ir_sha256", "x86_intrinsics", "external_calls")


def load_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpu_fingerprint", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_differences(mine: dict, theirs: dict) -> tuple[list[str], list[str]]:
    """(kernels that differ in what :data:`COMPARED` holds, or exist on one side only;
    kernels that differ in their object code alone)."""
    differ = sorted(set(mine) ^ set(theirs))
    objects_only = []
    for label in sorted(set(mine) & set(theirs)):
        if any(mine[label][key] != theirs[label][key] for key in COMPARED):
            differ.append(label)
        elif mine[label]["object_sha256"] != theirs[label]["object_sha256"]:
            objects_only.append(label)
    return differ, objects_only


def test_a_committed_fingerprint_exists_and_names_its_cpu():
    tool = load_tool()
    assert COMMITTED, "no CPU fingerprint committed: run `make fingerprint`"
    for path in COMMITTED:
        found = json.loads(path.read_text())
        assert path.name == tool.file_name(found["cpu"])
        assert set(found) == {"cpu", "glibc", "tensorflow", "numpy", "reference_fits", "kernels"}
        assert found["numpy"]["active"] == ["X86_V3"]  # numpy pinned to its AVX2 kernels
        assert all(not summary["x86_intrinsics"] for summary in found["kernels"].values())


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
    }
    mine = {"a": same, "b": same, "c": same, "d": same}
    theirs = {
        "a": same,
        "b": {**same, "object_sha256": "o2"},
        "c": {**same, "x86_intrinsics": ["llvm.x86.sse.rsqrt.ss"]},
        "e": same,
    }
    assert kernel_differences(mine, theirs) == (["d", "e", "c"], ["b"])


@pytest.mark.slow
@pytest.mark.parametrize("committed", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_this_machine_matches_every_committed_cpu_kind(committed, tmp_path):
    out = tmp_path / "here.json"
    subprocess.run([sys.executable, str(TOOL), "--out", str(out)], env=project_env(), check=True, capture_output=True)
    mine, theirs = json.loads(out.read_text()), json.loads(committed.read_text())
    if mine["glibc"] != theirs["glibc"] or mine["tensorflow"] != theirs["tensorflow"]:
        pytest.skip(
            f"{committed.name} was made with {theirs['glibc']}, TensorFlow {theirs['tensorflow']}; "
            f"here {mine['glibc']}, {mine['tensorflow']}: other bytes are expected"
        )
    assert mine["reference_fits"] == theirs["reference_fits"]
    differ, objects_only = kernel_differences(mine["kernels"], theirs["kernels"])
    assert differ == [], f"kernels compiled otherwise than on {committed.stem}: {differ}"
    if objects_only:
        warnings.warn(
            f"{len(objects_only)} kernels' object code differs from {committed.stem}'s with the same IR "
            f"(instruction scheduling for this CPU): {objects_only[:5]}",
            stacklevel=1,
        )
