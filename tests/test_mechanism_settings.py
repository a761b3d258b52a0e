"""The mechanisms issue's estimator settings against NumPy references: SGD's momentum, L2 weight
decay and adaptive gradient clipping as the compiled training step applies them, and a SkipInit
residual network's forward pass; bad combinations refused by name."""

from __future__ import annotations

import importlib
import shutil
import sys

import numpy as np
import pytest
from test_gradient_clipping import numpy_agc

from bnlab import KerasMLPClassifier
from bnlab.experiments.params import ParamsError, parse_params
from bnlab.ml import compiled, loop, residual, tf_runtime
from bnlab.ml.gradient_rule import GradientRule
from bnlab.ml.model import build_mlp, build_optimizer
from bnlab.ml.tf_runtime import keras, tf

from test_config import default_raw

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 12)).astype(np.float32)
Y = (np.arange(64) % 3).astype(np.int32)
BATCHES = RNG.permutation(64)[:48].reshape(3, 16).astype(np.int32)  # three steps of 16 rows
LEARNING_RATE = 0.1


def numpy_sgd(model, rule: GradientRule, momentum: float) -> list[np.ndarray]:
    """The weights after :data:`BATCHES`, written from the definitions: TensorFlow's gradient of
    the batch's mean cross-entropy (training mode) at the current weights, then in float64 AGC
    on every unit but the output layer's, λ·W on each kernel (``<layer>/kernel``), and Keras's
    heavy ball v ← μ·v − η·g, w ← w + v."""
    variables = model.trainable_variables
    weights = [v.numpy().astype(np.float64) for v in variables]
    velocity = [np.zeros_like(w) for w in weights]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for batch in BATCHES:
        for variable, w in zip(variables, weights):
            variable.assign(w.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = loss_fn(Y[batch], model(X[batch], training=True))
        for i, (variable, g) in enumerate(zip(variables, tape.gradient(loss, variables))):
            g = g.numpy().astype(np.float64)
            if rule.clip_factor is not None and not variable.path.startswith("logits/"):
                g = numpy_agc(g, weights[i], rule.clip_factor)
            if variable.path.endswith("/kernel"):
                g = g + rule.weight_decay * weights[i]
            velocity[i] = momentum * velocity[i] - LEARNING_RATE * g
            weights[i] = weights[i] + velocity[i]
    return weights


def compiled_sgd(model, rule: GradientRule, momentum: float) -> list[np.ndarray]:
    """The same steps through the estimator's compiled loop."""
    optimizer = build_optimizer("sgd", LEARNING_RATE, momentum)
    optimizer.build(model.trainable_variables)
    steps = loop.compile_train_steps(model, optimizer, BATCHES.shape[1], rule)
    steps(tf.constant(X), tf.constant(Y), tf.constant(BATCHES), 0, len(BATCHES))
    return [v.numpy() for v in model.trainable_variables]


def network(**settings) -> keras.Model:
    keras.utils.set_random_seed(3)
    return build_mlp(12, 3, (16, 16), **settings)


@pytest.mark.parametrize(
    "rule, momentum",
    [
        (GradientRule(), 0.9),
        (GradientRule(weight_decay=0.1), 0.0),
        (GradientRule(clip_factor=0.01), 0.0),
        (GradientRule(clip_factor=0.01, weight_decay=0.05), 0.9),
    ],
    ids=["momentum", "weight_decay", "agc", "all"],
)
@pytest.mark.parametrize("residual", ["none", "skipinit"])
def test_a_compiled_step_applies_the_settings_as_their_definitions_do(rule, momentum, residual):
    start = network(residual=residual).get_weights()
    reference, model = network(residual=residual), network(residual=residual)
    reference.set_weights(start)
    model.set_weights(start)
    expected = numpy_sgd(reference, rule, momentum)
    got = compiled_sgd(model, rule, momentum)
    for g, e, variable in zip(got, expected, model.trainable_variables):
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-6, err_msg=variable.path)
    # and the setting mattered: plain SGD ends elsewhere, by far more than the tolerance
    plain = network(residual=residual)
    plain.set_weights(start)
    without = numpy_sgd(plain, GradientRule(), 0.0)
    assert max(np.abs(e - w).max() for e, w in zip(expected, without)) > 1e-3


def numpy_forward(model: keras.Model, x: np.ndarray, residual: bool, batch_norm: bool) -> np.ndarray:
    """Logits in float64, from the weights: per hidden layer z = hW + b, BN in inference mode
    (γ(z − mean)/√(var + ε) + β), ReLU; after the first layer h ← h + α·relu(...) if residual."""
    h = x.astype(np.float64)
    hidden = len([layer for layer in model.layers if layer.name.startswith("dense_")])
    for i in range(1, hidden + 1):
        kernel, bias = (w.astype(np.float64) for w in model.get_layer(f"dense_{i}").get_weights())
        z = h @ kernel + bias
        if batch_norm:
            bn = model.get_layer(f"bn_{i}")
            gamma, beta, mean, variance = (w.astype(np.float64) for w in bn.get_weights())
            z = gamma * (z - mean) / np.sqrt(variance + bn.epsilon) + beta
        a = np.maximum(z, 0)
        h = h + float(model.get_layer(f"skip_gain_{i}").get_weights()[0]) * a if residual and i > 1 else a
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("logits").get_weights())
    return h @ kernel + bias


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_skipinit_network_computes_input_plus_gain_times_branch(batch_norm):
    keras.utils.set_random_seed(4)
    model = build_mlp(12, 3, (16, 16, 16), batch_norm=batch_norm, residual="skipinit")
    assert [layer.name for layer in model.layers if "gain" in layer.name] == ["skip_gain_2", "skip_gain_3"]
    rng = np.random.default_rng(5)
    for layer in model.layers:  # every weight random: gains, γ, β, means and variances too
        if layer.weights and not layer.name.startswith("dense_") and layer.name != "logits":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    got = model(X, training=False).numpy()
    np.testing.assert_allclose(got, numpy_forward(model, X, True, batch_norm), rtol=1e-5, atol=1e-5)


def test_at_initialization_every_block_is_the_identity():
    """SkipInit's point: with the gains at 0 the blocks' weights cannot change the output."""
    keras.utils.set_random_seed(6)
    model = build_mlp(12, 3, (16,) * 6, batch_norm=False, residual="skipinit")
    before = model(X).numpy()
    for i in range(2, 7):
        layer = model.get_layer(f"dense_{i}")
        layer.set_weights([w * 7 + 1 for w in layer.get_weights()])
    assert np.array_equal(model(X).numpy(), before)


def test_a_fit_trains_the_gains_and_saves_and_loads_a_residual_network(tmp_path):
    x, y = X, Y
    clf = KerasMLPClassifier(
        hidden_units=(16,), depth=3, residual="skipinit", bn_statistics="recomputed", epochs=3, random_state=0
    ).fit(x, y)
    gains = [float(clf.model_.get_layer(f"skip_gain_{i}").get_weights()[0]) for i in (2, 3)]
    assert all(g != 0 for g in gains)
    loaded = KerasMLPClassifier.load(clf.save(tmp_path / "residual"))
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))


def import_the_served_copy_of_the_gain(folder, monkeypatch):
    """residual.py imported as a served model's code imports it (a top-level module beside
    tf_runtime.py), which registers its own SkipGain class under bnlab's name; undone after
    the test, as is the process's template cache, emptied so that templates are built anew."""
    for module in (residual, tf_runtime):
        shutil.copy(module.__file__, folder)
    monkeypatch.syspath_prepend(folder)
    monkeypatch.setitem(keras.saving.get_custom_objects(), "bnlab>SkipGain", residual.SkipGain)
    monkeypatch.setattr(compiled, "_TEMPLATES", {})
    for name in ("residual", "tf_runtime"):
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, None)  # so that undoing removes the import
            del sys.modules[name]
    return importlib.import_module("residual")


def test_a_residual_network_fits_the_same_after_a_served_model_registered_its_gain(tmp_path, monkeypatch):
    settings = {"hidden_units": (16,), "depth": 3, "residual": "skipinit", "bn_statistics": "recomputed", "epochs": 2}
    before = KerasMLPClassifier(**settings, random_state=0).fit(X, Y)
    served = import_the_served_copy_of_the_gain(tmp_path, monkeypatch)
    after = KerasMLPClassifier(**settings, random_state=0).fit(X, Y)
    rebuilt = compiled.template_for(after.model_).model  # from the config, as the statistics' segments are
    assert type(rebuilt.get_layer("skip_gain_2")) is served.SkipGain
    np.testing.assert_array_equal(after.predict_proba(X), before.predict_proba(X))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"optimizer": "adam", "momentum": 0.9}, "momentum 0.9 is SGD's heavy ball; optimizer 'adam' has none"),
        ({"residual": "skipinit", "hidden_units": (16, 8)}, "every hidden layer needs one width, got [16, 8]"),
        ({"gradient_clipping": "global"}, "gradient_clipping"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_the_estimator_refuses_bad_settings_by_name(settings, message):
    with pytest.raises(ValueError) as info:
        KerasMLPClassifier(epochs=1, **settings).fit(X, Y)
    assert message in str(info.value)


def test_params_refuse_a_residual_network_of_several_widths_by_variant():
    raw = default_raw()
    raw["experiments"]["notebook"]["variants"]["batchnorm"] |= {"residual": "skipinit", "hidden_units": [32, 16]}
    with pytest.raises(ParamsError, match=r"variant 'batchnorm': residual 'skipinit' adds .* got \[32, 16\]"):
        parse_params(raw)
