"""The same bytes on AMD and Intel CPUs: no CPU-chosen arithmetic in the compiled code, numpy's
dispatch pinned, and a fit that plays the other vendor gives the same bytes.

XLA compiled BN's ``rsqrt`` to the hardware estimate plus Newton steps, one on AMD and two on
Intel (bnlab.ml.tf_runtime); the estimate instructions' own tables differ between vendors too.
tests/vendor_fits.py runs fits through every compiled path in a fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from bnlab.core import numpy_dispatch
from bnlab.core.cpu import first_processor
from bnlab.ml import xla_dump
from bnlab.tracking.job_cache import libc_version

from helpers import PROJECT, comparable_fits, project_env

VENDOR_FITS = PROJECT / "tests" / "vendor_fits.py"
COMMITTED_FINGERPRINTS = sorted((PROJECT / "tests" / "data" / "cpu_fingerprints").glob("*.json"))


def vendor_fits(*args: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, str(VENDOR_FITS), *args], env={**project_env(), **(env or {})}, capture_output=True, text=True
    )
    if "LiteralMissing" in done.stderr:
        pytest.skip(f"the vendor switch cannot act on this TensorFlow: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def estimates_in(folder) -> dict[str, list[str]]:
    return {k.label: k.estimate_intrinsics() for k in xla_dump.kernels(folder) if k.estimate_intrinsics()}


# The fits below compile every path with the program cache off (a minute and more each): slow,
# every one of them, so that the fast suite never pays for the dumped fits alone. The first test
# to use `pinned` also carries its set-up: the one with three fit sets of its own then took
# 587-600 s beside the other slow tests on a 2-core AMD EPYC (family 25 model 1), as long as the
# suite's guard against hangs; theirs is twice that.
PINNED_TIMEOUT = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    """This CPU's fits' digests and the folder their programs were dumped into: training,
    inference, every probe, for every normalizer (and the noise layers)."""
    folder = tmp_path_factory.mktemp("pinned")
    return vendor_fits("--dump", str(folder)), folder


UNPINNED_FITS = "--fits", "plain,batchnorm,layer"  # the plain network has no rsqrt: the control


@pytest.fixture(scope="module")
def unpinned(tmp_path_factory):
    """Per vendor: fits without the pinned backend option, compiled as on that vendor's CPU
    (whatever this one is), and the folder their programs were dumped into. Without the option
    BN and LayerNorm compute rsqrt by the hardware's estimate, which differs by vendor."""
    found = {}
    for vendor in ("amd", "intel"):
        folder = tmp_path_factory.mktemp(f"unpinned-{vendor}")
        found[vendor] = vendor_fits("--dump", str(folder), "--vendor", vendor, "--without-fix", *UNPINNED_FITS), folder
    return found


@pytest.mark.slow
@PINNED_TIMEOUT
def test_the_reference_fits_give_every_committed_cpu_kinds_bytes(pinned):
    digests, _ = pinned
    for path in COMMITTED_FINGERPRINTS:
        committed = json.loads(path.read_text())
        if committed["glibc"] == libc_version():  # another C library: other powf bits (bnlab.tracking.job_cache)
            mine, theirs = comparable_fits(digests, committed["reference_fits"])
            assert mine == theirs, path.name


@pytest.mark.slow
@PINNED_TIMEOUT
def test_no_compiled_program_uses_the_hardwares_reciprocal_estimates(pinned, unpinned):
    _, folder = pinned
    kernels = xla_dump.kernels(folder)
    programs = {k.program.split(".", 1)[1] for k in kernels}
    assert len(kernels) > 300 and {"steps", "run"} <= programs, programs  # the dump holds what ran
    assert any("llvm.sqrt" in k.ir for k in kernels)  # normalization's square roots are there...
    assert estimates_in(folder) == {}  # ...computed exactly
    # The check can tell: without the pinned backend option, the kernels use the estimate.
    for vendor, (_, without_fix) in unpinned.items():
        found = estimates_in(without_fix)
        assert found and all("rsqrt" in "".join(names) for names in found.values()), (vendor, found)


@pytest.mark.slow
@PINNED_TIMEOUT
def test_llvm_may_reorder_arithmetic_only_in_xlas_sums(pinned):
    # Where a kernel's IR is strict IEEE, the vectorizing LLVM chooses per CPU keeps every bit
    # (tests/test_cpu_fingerprints.py relies on it); XLA's sums may be reassociated, and their
    # IR must then be the same on every CPU kind.
    _, folder = pinned
    free = [k for k in xla_dump.kernels(folder) if k.fp_freedoms()]
    assert free and {flag for k in free for flag in k.fp_freedoms()} == {"reassoc"}
    flagged = [line.strip() for k in free for line in k.ir.splitlines() if " reassoc " in line]
    sums = re.compile(r"= (f(add|sub) reassoc |tail call reassoc float @llvm\.vector\.reduce\.fadd\.)")
    assert [line for line in flagged if not sums.search(line)] == []


@pytest.mark.slow
@PINNED_TIMEOUT
def test_a_fit_compiled_as_on_the_other_vendor_gives_the_same_bytes(pinned, unpinned):
    # XLA compiles as on AMD where LLVM's features hold +sse4a: this CPU plays the other side of that
    # rule, whatever its vendor's name (a Hygon CPU has sse4a too).
    native, _ = pinned
    other = "intel" if "sse4a" in first_processor().get("flags", "").split() else "amd"
    assert vendor_fits("--vendor", other) == native
    # The switch acts: without the pinned option, BN and LayerNorm train other weights per vendor
    # (the plain network, which has no rsqrt, the same).
    (amd, _), (intel, _) = unpinned["amd"], unpinned["intel"]
    assert amd["plain"] == intel["plain"]
    assert amd["batchnorm"]["weights"] != intel["batchnorm"]["weights"]
    assert amd["layer"]["weights"] != intel["layer"]["weights"]


# --- numpy ---------------------------------------------------------------------------------

DISPATCH = "import {first}; from bnlab.core.numpy_dispatch import active_targets; print(','.join(active_targets()))"


def active_targets(first: str, **env) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", DISPATCH.format(first=first)],
        env={**project_env(), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().split(",")


def test_numpy_runs_its_avx2_kernels_in_a_bnlab_process_whatever_the_user_set():
    from numpy._core._multiarray_umath import __cpu_dispatch__

    assert set(numpy_dispatch.AVX512_TARGETS) <= set(__cpu_dispatch__)  # the names the installed numpy knows
    for value in ["", "X86_V4"]:
        assert active_targets("bnlab", **{numpy_dispatch.VARIABLE: value}) == ["X86_V3"]
    # numpy loaded first: bnlab cannot act, and says what runs
    loaded_first = active_targets("numpy, bnlab", **{numpy_dispatch.VARIABLE: ""})
    has_avx512 = "avx512f" in open("/proc/cpuinfo").read()
    assert ("X86_V4" in loaded_first) == has_avx512


PREDICT = """
import hashlib, json, numpy as np
from bnlab import KerasMLPClassifier
from helpers import make_mnist
data = make_mnist(n_train=300, n_test=1100)
x, y, xt = data.x_train.reshape(300, -1), data.y_train, data.x_test.reshape(1100, -1)
clf = KerasMLPClassifier(hidden_units=(16,), epochs=1, rescale=1 / 255, random_state=0).fit(x, y)
digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
out = {"proba": digest(clf.predict_proba(xt)), "log_proba": digest(clf.predict_log_proba(xt)),
       "history": json.dumps(clf.history_)}
print(json.dumps(out))
"""


@pytest.mark.slow  # two fresh processes, each fitting
def test_probabilities_and_losses_do_not_follow_numpys_kernels():
    # numpy loaded before bnlab, so numpy's AVX-512 kernels run where the CPU has them, or not
    runs = [
        subprocess.run(
            [sys.executable, "-c", "import numpy\n" + PREDICT],
            env={**project_env(), numpy_dispatch.VARIABLE: value},
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
        for value in ["", " ".join(numpy_dispatch.AVX512_TARGETS)]
    ]
    assert json.loads(runs[0]) == json.loads(runs[1])


def test_the_pinned_settings_are_recorded_with_every_run():
    from bnlab.ml.tf_runtime import PINNED_ENVIRONMENT, runtime_settings

    assert "xla_cpu_disable_platform_dependent_math" in PINNED_ENVIRONMENT["XLA_FLAGS"]
    assert runtime_settings()["XLA_FLAGS"].startswith(PINNED_ENVIRONMENT["XLA_FLAGS"])
    assert os.environ["XLA_FLAGS"].count("--xla_backend_extra_options=") == 1  # a second would replace it
