"""The same bytes on every x86-64 CPU with AVX2: what one machine can vary does not change the
weights, the probes or the predictions (oneDNN's instruction-set caps, thread settings), no sum
in the compiled programs is long enough for Eigen's cache-dependent blocking to cut it, the
fixed-order product is the product, and the served model gives the estimator's bytes."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from bnlab.core.cpu import cpu_class
from bnlab.ml import fixed_order, loop
from bnlab.ml.compiled import template_for
from bnlab.ml.model import build_mlp, build_optimizer
from bnlab.ml.tf_runtime import keras, tf

from helpers import make_mnist, project_env

# A fit that exercises everything the pipeline computes: 784-long first-layer sums, BN, the
# noise layers' random draws, probes every few steps (inference, training-mode BN),
# predict_proba in blocks with a padded tail and BN's statistics recomputed over the rows.
FIT = """
import hashlib, json, numpy as np
from bnlab import KerasMLPClassifier
from bnlab.ml.bn_statistics import population_statistics
from bnlab.ml.probes import ProbeRecorder
from helpers import make_mnist
data = make_mnist(n_train=500, n_test=130)
x, y = data.x_train.reshape(500, -1), data.y_train
xt, yt = data.x_test.reshape(130, -1), data.y_test
probes = ProbeRecorder(5, (xt, yt), (xt, yt), n_hidden=2, probe_images=100, batch_size=32)
clf = KerasMLPClassifier(hidden_units=(32, 32), epochs=2, rescale=1 / 255, random_state=3, noise_shift=0.5,
                         noise_scale=2.0, callbacks=[probes]).fit(x, y, validation_data=(xt, yt))
digest = lambda b: hashlib.sha256(b).hexdigest()
print(json.dumps({"weights": digest(b"".join(w.tobytes() for w in clf.model_.get_weights())),
                  "proba": digest(clf.predict_proba(xt).tobytes()),
                  "probes": digest(json.dumps([clf.history_, probes.probe_rows, probes.step_rows]).encode()),
                  "statistics": digest(b"".join(v.tobytes() for v in population_statistics(clf.model_, x).values()))}))
"""


def fit_digests(**env) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", FIT], env={**project_env(), **env}, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def onednn_levels() -> list[str]:
    """oneDNN's instruction-set caps this CPU can take, from the highest down to AVX2."""
    flags = set(Path("/proc/cpuinfo").read_text().split())
    levels = [
        ("AVX512_CORE_AMX", "amx_tile"),
        ("AVX512_CORE_BF16", "avx512_bf16"),
        ("AVX512_CORE_VNNI", "avx512_vnni"),
        ("AVX512_CORE", "avx512f"),
        ("AVX2_VNNI", "avx_vnni"),
        ("AVX2", "avx2"),
    ]
    return [level for level, flag in levels if flag in flags]


THREADS = {"BNLAB_TF_THREADS": "2", "OMP_NUM_THREADS": "2"}


# Slow: a fresh process per setting, a minute and more in all.
@pytest.mark.slow
def test_every_oneDNN_cap_down_to_AVX2_and_the_thread_settings_change_no_byte():
    reference = fit_digests()
    caps = [{"ONEDNN_MAX_CPU_ISA": level} for level in onednn_levels()]
    for env in [THREADS, {"ONEDNN_MAX_CPU_ISA": "AVX2", **THREADS}, *caps]:
        assert fit_digests(**env) == reference, env


# --- the sums Eigen could cut ---------------------------------------------------------------

INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = f32\[([\d,]*)\]\S* (\S+?)\((.*)$", re.M)


def contracted_lengths(hlo: str) -> list[int]:
    """The length of every sum of the dots in an optimized HLO module: the size of the
    contracting dimension of each dot's left operand (whose shape its own line gives)."""
    shapes = {name: [int(d) for d in dims.split(",") if d] for name, dims, _, _ in INSTRUCTION.findall(hlo)}
    lengths = []
    for _, _, op, rest in INSTRUCTION.findall(hlo):
        if op == "dot":
            lhs = re.match(r"%([^,\s)]+)", rest).group(1)
            dim = int(re.search(r"lhs_contracting_dims=\{(\d+)\}", rest).group(1))
            lengths.append(shapes[lhs][dim])
    return lengths


@pytest.mark.parametrize("hidden_units, batch_size", [((32, 32), 32), ((100, 100, 100), 60), ((300,), 300)])
def test_no_sum_in_the_compiled_programs_is_longer_than_a_chunk(hidden_units, batch_size):
    keras.utils.set_random_seed(0)
    model = build_mlp(784, 10, hidden_units, batch_norm=True, rescale=1 / 255)
    optimizer = build_optimizer("adam", 0.01)
    optimizer.build(model.trainable_variables)
    steps = loop.compile_train_steps(model, optimizer, batch_size)
    x = tf.zeros([2 * batch_size, 784], tf.uint8)
    y = tf.zeros([2 * batch_size], tf.int32)
    whole, _ = loop.epoch_batches(np.arange(2 * batch_size), batch_size)
    args = (x, y, whole, tf.constant(0), tf.constant(1))
    train_hlo = steps.compiled.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
    network = template_for(model).model
    logits = tf.function(lambda x: network(x, training=False), jit_compile=True)
    logits_hlo = logits.experimental_get_compiler_ir(tf.zeros([fixed_order.INFERENCE_ROWS, 784]))(stage="optimized_hlo")
    lengths = contracted_lengths(train_hlo) + contracted_lengths(logits_hlo)
    # forward, both gradients of each layer, inference: every product was found
    assert len(contracted_lengths(train_hlo)) >= 3 * (len(hidden_units) + 1) - 1
    assert 784 not in lengths and max(lengths) <= fixed_order.CHUNK
    if batch_size > fixed_order.CHUNK:  # the kernels' gradients sum over the batch: cut too
        assert max(lengths) < batch_size


def test_the_training_step_compiles_once_for_every_chunk_of_steps():
    # XLA compiles anew for each value of an input it must know at compile time (a Range op's
    # bounds, for one): then every chunk between two probes would compile for seconds.
    keras.utils.set_random_seed(0)
    model = build_mlp(784, 10, (8,), batch_norm=True)
    optimizer = build_optimizer("adam", 0.01)
    optimizer.build(model.trainable_variables)
    steps = loop.compile_train_steps(model, optimizer, 4)
    whole, _ = loop.epoch_batches(np.arange(16), 4)
    data = (tf.zeros([16, 784]), tf.zeros([16], tf.int32), whole)

    def program(first: int, count: int) -> str:
        return steps.compiled.experimental_get_compiler_ir(*data, tf.constant(first), tf.constant(count))(stage="hlo")

    assert program(0, 1) == program(1, 3) == program(3, 1)  # bounds are inputs, not constants


def test_the_fixed_order_product_is_the_product_and_so_are_its_gradients():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(70, 784)).astype(np.float32), rng.normal(size=(784, 9)).astype(np.float32)
    assert fixed_order.chunk_bounds(784) == [(0, 196), (196, 392), (392, 588), (588, 784)]
    assert fixed_order.chunk_bounds(100) == [(0, 100)]
    ta, tb = tf.constant(a), tf.constant(b)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([ta, tb])
        fixed, plain = fixed_order.fixed_order_matmul(ta, tb), tf.matmul(ta, tb)
        weights = tf.constant(rng.normal(size=(70, 9)).astype(np.float32))
        fixed_loss, plain_loss = tf.reduce_sum(fixed * weights), tf.reduce_sum(plain * weights)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(fixed.numpy(), exact, rtol=1e-4, atol=1e-4)
    for fixed_grad, plain_grad in zip(tape.gradient(fixed_loss, [ta, tb]), tape.gradient(plain_loss, [ta, tb])):
        np.testing.assert_allclose(fixed_grad.numpy(), plain_grad.numpy(), rtol=1e-4, atol=1e-4)
    # four products of 196 terms, added left to right: the bytes of that sum, not of one long one
    pieces = [tf.matmul(ta[:, s:e], tb[s:e]) for s, e in fixed_order.chunk_bounds(784)]
    assert np.array_equal(fixed.numpy(), (((pieces[0] + pieces[1]) + pieces[2]) + pieces[3]).numpy())
    assert not np.array_equal(fixed.numpy(), plain.numpy())  # one long sum rounds otherwise


def test_a_rows_probabilities_do_not_depend_on_what_else_is_in_the_call():
    keras.utils.set_random_seed(0)
    network = build_mlp(784, 10, (32,), batch_norm=True, rescale=1 / 255)
    infer = fixed_order.compile_inference(network)
    rows = fixed_order.INFERENCE_ROWS
    pixels = np.random.default_rng(0).integers(0, 256, (fixed_order.BLOCKS_PER_CALL * rows + 1500, 784), np.uint8)
    everything = infer(pixels)  # a call of many blocks, then one block, then a padded tail
    for part, rows_of in [
        (infer(pixels[:rows]), slice(0, rows)),  # one block alone
        (infer(pixels[-1500:]), slice(-1500, None)),  # other neighbours, other padding
        (infer(pixels[5:6]), slice(5, 6)),
    ]:  # a row alone
        assert np.array_equal(everything.proba[rows_of], part.proba)
        assert np.array_equal(everything.log_proba[rows_of], part.log_proba)
    logits = network(pixels[:50].astype(np.float32), training=False).numpy().astype(np.float64)
    # Keras's eager float32 logits differ from the fixed-order ones in their last bits
    np.testing.assert_allclose(everything.log_proba[:50], log_softmax(logits, axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(everything.proba[:50], softmax(logits, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(everything.proba, np.exp(everything.log_proba), rtol=1e-14)
    np.testing.assert_allclose(everything.proba.sum(axis=1), 1.0, rtol=1e-14)
    assert everything.proba.dtype == everything.log_proba.dtype == np.float64


# --- one template per configuration: no fit sees another's state ------------------------------


def test_a_fit_gives_the_same_bytes_whatever_else_used_its_template_in_between():
    from bnlab import KerasMLPClassifier

    data = make_mnist(n_train=300, n_test=50)
    x, y = data.x_train.reshape(300, -1), data.y_train
    settings = {"hidden_units": (16,), "epochs": 2, "rescale": 1 / 255}

    class FitAnother:  # at every 4th step, a whole other fit of the same configuration
        every_steps = 4

        def on_step_end(self, step, logs):
            KerasMLPClassifier(**settings, random_state=99).fit(x[::-1], y[::-1])

    alone = KerasMLPClassifier(**settings, random_state=1).fit(x, y)
    interrupted = KerasMLPClassifier(**settings, random_state=1, callbacks=[FitAnother()]).fit(x, y)
    for a, b in zip(alone.model_.get_weights(), interrupted.model_.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(alone.predict_proba(x), interrupted.predict_proba(x))


# --- the served model -------------------------------------------------------------------------

SERVE = """
import sys, numpy as np, mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[2], model.predict({"pixels": np.load(sys.argv[3])}, params={"output": "probabilities"}))
"""


def test_the_served_model_gives_the_estimators_probabilities_byte_for_byte(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from bnlab import KerasMLPClassifier
    from bnlab.tracking.models import log_served_model

    data = make_mnist(n_train=300, n_test=1100)  # more than one block of rows, and a padded tail
    x, y = data.x_train.reshape(300, -1), data.y_train
    pixels = data.x_test.reshape(1100, -1).astype(np.float32)
    clf = KerasMLPClassifier(hidden_units=(16,), epochs=1, rescale=1 / 255, random_state=0).fit(x, y)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # where MLflow's Model.log writes too
    client = MlflowClient(store)
    experiment = client.create_experiment("served", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    log_served_model(client, run.info.run_id, clf.model_, clf.n_features_in_)
    np.save(tmp_path / "pixels.npy", pixels)
    subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE,
            f"runs:/{run.info.run_id}/model",
            str(tmp_path / "served.npy"),
            str(tmp_path / "pixels.npy"),
        ],
        env={**project_env(), "MLFLOW_TRACKING_URI": store},
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    served = np.load(tmp_path / "served.npy")
    assert served.dtype == np.float64 and served.shape == (1100, 10)
    assert hashlib.sha256(served.tobytes()).digest() == hashlib.sha256(clf.predict_proba(pixels).tobytes()).digest()


# --- the cache key ----------------------------------------------------------------------------


def test_the_cache_key_names_the_instruction_set_class_not_the_cpu(tmp_path):
    def cpu(flags: str) -> str:
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        return cpu_class(path)

    intel_avx512 = cpu("fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile")
    amd_avx2 = cpu("fpu sse4_2 avx avx2 fma bmi2")
    assert intel_avx512 == amd_avx2 == "x86_64+avx2+fma"
    assert cpu("fpu sse4_2 avx") == "x86_64:none" != intel_avx512
    assert cpu_class(tmp_path / "missing") == "x86_64:unknown"
