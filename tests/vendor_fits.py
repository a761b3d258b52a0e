"""Short fits through every compiled path (training; inference; the step, geometry,
init-gradient, weight-norm and sharpness probes; BN, batch renorm, LayerNorm, GroupNorm, the
noise layers; SGD with momentum, weight decay, adaptive gradient clipping and a SkipInit block;
BN's statistics recomputed after training), run as a script in a fresh process so that XLA's
flags and the vendor switch act before its first compile. Prints one JSON line: each fit's
sha256 of weights, probabilities and probe rows.

    python tests/vendor_fits.py [--dump DIR] [--vendor amd|intel] [--without-fix] [--fits a,b]

``--vendor`` makes XLA compile as on that vendor's CPU, whatever this one is: XLA decides "AMD"
when LLVM's feature string holds ``+sse4a`` (``xla/backends/cpu/codegen/ir_compiler.cc``), a
literal that occurs once in ``libtensorflow_cc.so.2``. Overwritten in the loaded library,
``+sse4.`` (a prefix of ``+sse4.1``, which every x86-64 CPU here has) reads as AMD, ``+sse4~``
(never present) as Intel. ``--without-fix`` drops the backend option that
:mod:`bnlab.ml.tf_runtime` pins, to show what it changes.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import mmap
import os
from pathlib import Path

LITERAL = b"+sse4a"
PLAYS = {"amd": b"+sse4.", "intel": b"+sse4~"}
LIBRARY = "libtensorflow_cc.so"
FIX = "--xla_backend_extra_options=xla_cpu_disable_platform_dependent_math"


class LiteralMissing(RuntimeError):
    """This TensorFlow has no single ``+sse4a`` literal: the switch cannot act."""


def library_mappings() -> list[tuple[int, int, int, str]]:
    """(start, end, file offset, path) of every mapping of TensorFlow's C++ library here."""
    found = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and LIBRARY in fields[5]:
            start, end = (int(v, 16) for v in fields[0].split("-"))
            found.append((start, end, int(fields[2], 16), fields[5]))
    return found


def literal_offset(path: str) -> int:
    data = Path(path).read_bytes()
    offset = data.find(LITERAL)
    if offset < 0 or data.find(LITERAL, offset + 1) >= 0:
        raise LiteralMissing(f"{path}: {LITERAL.decode()!r} occurs {data.count(LITERAL)} times, not once")
    return offset


def play(vendor: str) -> None:
    """Overwrite the literal in the loaded library, so that XLA compiles as on ``vendor``."""
    mappings = library_mappings()
    if not mappings:
        raise LiteralMissing(f"{LIBRARY} is not loaded")
    offset = literal_offset(mappings[0][3])
    start, _, file_offset, _ = next(m for m in mappings if m[2] <= offset < m[2] + m[1] - m[0])
    address = start + offset - file_offset
    page = address & ~(mmap.PAGESIZE - 1)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(page, 2 * mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
    ctypes.memmove(address, PLAYS[vendor], len(PLAYS[vendor]))
    libc.mprotect(page, 2 * mmap.PAGESIZE, mmap.PROT_READ)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fit(name: str) -> dict:
    from bnlab import KerasMLPClassifier
    from bnlab.ml.bn_statistics import population_statistics
    from bnlab.ml.geometry import GeometryProbe
    from bnlab.ml.init_gradients import InitGradientProbe
    from bnlab.ml.probes import ProbeRecorder
    from bnlab.ml.sharpness import SharpnessProbe
    from bnlab.ml.weight_norms import WeightNormProbe

    from helpers import make_mnist

    data = make_mnist(n_train=200, n_test=70)
    x, y = data.x_train.reshape(200, -1), data.y_train
    xt, yt = data.x_test.reshape(70, -1), data.y_test
    settings = {
        "plain": {"batch_norm": False},
        "batchnorm": {"noise_shift": 0.5, "noise_scale": 2.0},
        "batch_renorm": {"normalization": "batch_renorm"},
        "layer": {"normalization": "layer"},
        "group": {"normalization": "group", "norm_groups": 4},
        # the mechanisms issue's settings, all at once: SGD's momentum, L2 weight decay, AGC and
        # a SkipInit residual block
        "mechanisms": {
            "optimizer": "sgd",
            "learning_rate": 0.05,
            "momentum": 0.9,
            "weight_decay": 1e-3,
            "gradient_clipping": "adaptive",
            "clip_factor": 0.1,
            "residual": "skipinit",
        },
    }[name]
    probes = [
        ProbeRecorder(3, (xt, yt), (xt, yt), n_hidden=2, probe_images=64, batch_size=16),
        GeometryProbe([2, 5], 0.01, (0.5, 2.0), n_hidden=2, seed=1),
        InitGradientProbe(2),
    ]
    if name == "mechanisms":  # its probes too: the kernels' norms and λ_max by Hessian-vector products
        probes += [WeightNormProbe([1, 5], n_hidden=2), SharpnessProbe([2, 5], x[:32], y[:32], seed=1)]
    clf = KerasMLPClassifier(
        hidden_units=(16, 16), epochs=1, batch_size=16, rescale=1 / 255, random_state=5, callbacks=probes, **settings
    ).fit(x, y, validation_data=(xt, yt))
    rows = [probes[0].probe_rows, probes[0].step_rows, probes[1].landscape_rows, probes[1].ics_rows, probes[2].rows]
    rows += [probe.rows for probe in probes[3:]]
    return {
        "weights": digest(b"".join(w.tobytes() for w in clf.model_.get_weights())),
        "proba": digest(clf.predict_proba(xt).tobytes()),
        "probes": digest(json.dumps([clf.history_, rows], default=str).encode()),
        # BN's statistics recomputed over the training rows (none without BN)
        "statistics": digest(b"".join(v.tobytes() for v in population_statistics(clf.model_, x).values())),
    }


FITS = ("plain", "batchnorm", "batch_renorm", "layer", "group", "mechanisms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--vendor", choices=sorted(PLAYS))
    parser.add_argument("--without-fix", action="store_true")
    parser.add_argument("--fits", default=",".join(FITS))
    args = parser.parse_args()
    import bnlab.ml.tf_runtime  # noqa: F401  (loads TensorFlow and pins XLA_FLAGS; nothing compiled yet)
    from bnlab.ml import xla_cache, xla_dump

    if args.without_fix or args.vendor:
        xla_cache.turn_off()  # a program loaded from the cache would not be compiled the other way
    if args.without_fix:
        os.environ["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace(FIX, "")
    if args.dump:
        xla_dump.dump_to(args.dump)
    if args.vendor:
        play(args.vendor)
    print(json.dumps({name: fit(name) for name in args.fits.split(",")}))


if __name__ == "__main__":
    main()
