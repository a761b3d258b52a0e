"""KerasMLPClassifier in scikit-learn's machinery, its history, errors, pickling and saving."""

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from bnlab import KerasMLPClassifier
from bnlab.ml import fixed_order, tf_runtime
from bnlab.ml.tf_runtime import keras

from helpers import make_mnist, project_env

MNIST = make_mnist(n_train=400, n_test=100)
X = MNIST.x_train.reshape(400, -1).astype(np.float32) / 255
Y = MNIST.y_train
X_TEST = MNIST.x_test.reshape(100, -1).astype(np.float32) / 255
FAST = {"epochs": 2, "hidden_units": (16,), "batch_size": 32, "random_state": 0}


def test_reference_defaults():
    params = KerasMLPClassifier().get_params()
    assert params["hidden_units"] == (32, 32) and params["batch_norm"] is True
    assert params["activation"] == "relu" and params["learning_rate"] == 0.01
    assert params["batch_size"] == 32 and params["epochs"] == 10
    assert params["random_state"] is None and params["verbose"] == 0


@pytest.mark.parametrize("batch_norm, n_bn", [(True, 2), (False, 0)])
def test_network_shape(batch_norm, n_bn):
    clf = KerasMLPClassifier(**{**FAST, "hidden_units": (32, 32)}, batch_norm=batch_norm).fit(X, Y)
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds.count("BatchNormalization") == n_bn
    assert [layer.units for layer in clf.model_.layers if isinstance(layer, keras.layers.Dense)] == [32, 32, 10]
    if batch_norm:  # BN between Dense and activation
        assert kinds[kinds.index("FixedOrderDense") + 1] == "BatchNormalization"


def test_fitted_attributes_and_predictions():
    clf = KerasMLPClassifier(**{**FAST, "epochs": 5}).fit(X, Y)
    assert clf.n_features_in_ == 784
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    proba = clf.predict_proba(X_TEST)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.score(X_TEST, MNIST.y_test) == accuracy_score(MNIST.y_test, clf.predict(X_TEST))
    assert clf.score(X_TEST, MNIST.y_test) > 0.8  # the toy digits are easy


def test_history_is_per_epoch_and_matches_inference():
    clf = KerasMLPClassifier(**{**FAST, "epochs": 3}).fit(X, Y, validation_data=(X_TEST, MNIST.y_test))
    assert set(clf.history_) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in clf.history_.values())
    # measured in inference mode on the whole set: the same numbers predict gives afterwards
    assert clf.history_["train_accuracy"][-1] == pytest.approx(clf.score(X, Y))
    assert clf.history_["val_accuracy"][-1] == pytest.approx(clf.score(X_TEST, MNIST.y_test))
    proba = clf.predict_proba(X_TEST)
    val_loss = -np.mean(np.log(proba[np.arange(100), MNIST.y_test]))
    assert clf.history_["val_loss"][-1] == pytest.approx(val_loss, rel=1e-5)


def test_history_without_validation_has_train_keys_only():
    clf = KerasMLPClassifier(**FAST).fit(X, Y)
    assert set(clf.history_) == {"train_loss", "train_accuracy"}


def test_callbacks_see_every_epoch_and_can_stop_training():
    seen = []

    class Recorder:
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, logs))

    clf = KerasMLPClassifier(**{**FAST, "epochs": 3}, callbacks=[Recorder()]).fit(X, Y, validation_data=(X, Y))
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert sorted(seen[0][1]) == ["seconds_per_step", "train_accuracy", "train_loss", "val_accuracy", "val_loss"]
    # Each epoch's own steps, timed (wall time: in the logs, never in the saved history).
    assert all(0 < logs["seconds_per_step"] < 5 for _, logs in seen)
    assert "seconds_per_step" not in clf.history_

    class StopAfterTwo:
        def set_model(self, model):
            self.model = model

        def on_epoch_end(self, epoch, logs):
            self.model.stop_training = epoch == 1

    clf = KerasMLPClassifier(**{**FAST, "epochs": 5}, callbacks=[StopAfterTwo()]).fit(X, Y)
    assert len(clf.history_["train_loss"]) == 2


def test_keras_lambda_callback_works():
    import keras

    losses = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: losses.append(logs["train_loss"]))
    clf = KerasMLPClassifier(**FAST, callbacks=[callback]).fit(X, Y)
    assert losses == clf.history_["train_loss"]


FITS = []  # epochs run, per fit; module level, so the clones GridSearchCV makes share it


class RecordFit:
    """Counts the epochs each fit runs."""

    def set_model(self, model):
        self.epochs = 0

    def on_epoch_end(self, epoch, logs):
        self.epochs += 1

    def on_train_end(self, logs):
        FITS.append(self.epochs)


def test_grid_search_trains_each_candidate_with_its_own_epochs_and_batch_size():
    FITS.clear()
    base = KerasMLPClassifier(epochs=3, batch_size=64, hidden_units=(8,), random_state=0, callbacks=[RecordFit()])
    search = GridSearchCV(base, {"batch_norm": [True, False], "learning_rate": [0.01, 0.003]}, cv=2)
    search.fit(X, Y)
    assert len(search.cv_results_["params"]) == 4
    assert FITS == [3] * (4 * 2 + 1)  # every candidate on every fold, then the refit
    best = search.best_estimator_
    assert best.get_params()["epochs"] == 3 and best.get_params()["batch_size"] == 64
    assert len(best.history_["train_loss"]) == 3
    assert best.n_iter_ == 3 and best.n_steps_ == 3 * -(-len(Y) // 64)  # the refit, on all rows
    cloned = clone(base)
    assert {k: v for k, v in cloned.get_params().items() if k != "callbacks"} == {
        k: v for k, v in base.get_params().items() if k != "callbacks"
    }
    assert type(cloned.callbacks[0]) is RecordFit


def test_pipeline_and_cross_val_score_with_raw_pixels():
    pipe = Pipeline([("scale", FunctionTransformer(lambda a: a / 255.0)), ("mlp", KerasMLPClassifier(**FAST))])
    scores = cross_val_score(pipe, MNIST.x_train.reshape(400, -1), Y, cv=2)
    assert scores.shape == (2,) and scores.min() > 0.5


def test_string_labels_come_back_as_strings():
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = KerasMLPClassifier(**FAST).fit(X, names[Y], validation_data=(X_TEST, names[MNIST.y_test]))
    predicted = clf.predict(X_TEST)
    assert predicted.dtype.kind == "U" and set(predicted) <= set(names)
    assert clf.score(X_TEST, names[MNIST.y_test]) > 0.5


@pytest.mark.parametrize(
    "X_bad, y_bad, message",
    [
        (np.where(np.eye(400, 784) > 0, np.nan, X), Y, "NaN"),
        (X[:, 0], Y, "Expected 2D array"),
        (X[:1], Y[:1], "1 class"),
    ],
)
def test_bad_input_gets_sklearn_errors(X_bad, y_bad, message):
    with pytest.raises(ValueError, match=message):
        KerasMLPClassifier(**FAST).fit(X_bad, y_bad)


def test_wrong_number_of_features_at_predict():
    clf = KerasMLPClassifier(**FAST).fit(X, Y)
    with pytest.raises(ValueError, match="784 features"):
        clf.predict(X[:, :100])


@pytest.mark.parametrize(
    "param, value, allowed",
    [
        ("activation", "relux", "'relu'"),
        ("optimizer", "adamax9", "'adam'"),
        ("epochs", 0, "range"),
        ("learning_rate", -1.0, "range"),
    ],
)
def test_bad_parameters_are_named_at_fit(param, value, allowed):
    clf = KerasMLPClassifier(**{**FAST, param: value})  # __init__ only stores
    with pytest.raises(InvalidParameterError, match=rf"'{param}' parameter.*{allowed}"):
        clf.fit(X, Y)


def test_bad_hidden_units_are_named():
    with pytest.raises(ValueError, match="hidden_units"):
        KerasMLPClassifier(**{**FAST, "hidden_units": (16, 0)}).fit(X, Y)


def test_pickle_round_trip_predicts_the_same():
    clf = KerasMLPClassifier(**FAST).fit(X, Y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X_TEST), clf.predict_proba(X_TEST))
    assert restored.history_ == clf.history_


def test_save_and_load_without_pickle(tmp_path):
    names = np.array(list("abcdefghij"))
    clf = KerasMLPClassifier(**FAST, rescale=0.5).fit(X, names[Y])
    folder = clf.save(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["estimator.json", "model.keras"]
    loaded = KerasMLPClassifier.load(folder)
    np.testing.assert_array_equal(loaded.predict_proba(X_TEST), clf.predict_proba(X_TEST))
    np.testing.assert_array_equal(loaded.predict(X_TEST), clf.predict(X_TEST))
    assert loaded.get_params()["rescale"] == 0.5 and loaded.history_ == clf.history_
    assert (loaded.n_iter_, loaded.n_steps_) == (clf.n_iter_, clf.n_steps_)


def test_npz_format_is_byte_reproducible_and_loads(tmp_path):
    clf = KerasMLPClassifier(**FAST).fit(X, Y)
    first = clf.save(tmp_path / "a", format="npz")
    second = clf.save(tmp_path / "b", format="npz")
    for name in ("weights.npz", "estimator.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    loaded = KerasMLPClassifier.load(first)
    np.testing.assert_array_equal(loaded.predict_proba(X_TEST), clf.predict_proba(X_TEST))


def test_load_refuses_a_model_file_that_would_run_code(tmp_path):
    import keras

    inputs = keras.Input(shape=(784,))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    folder = KerasMLPClassifier(**FAST).fit(X, Y).save(tmp_path / "saved")
    evil.save(folder / "model.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        KerasMLPClassifier.load(folder)


FIT_AND_HASH = """
import hashlib, sys
import numpy as np
from helpers import make_mnist
from bnlab import KerasMLPClassifier
m = make_mnist(n_train=400, n_test=100)
X = m.x_train.reshape(400, -1) / 255.0
for seed in {seeds}:
    clf = KerasMLPClassifier(epochs=2, hidden_units=(32, 32), random_state=seed).fit(X, m.y_train)
    weights = b"".join(np.asarray(w).tobytes() for w in clf.model_.get_weights())
    proba = clf.predict_proba(m.x_test.reshape(100, -1) / 255.0).tobytes()
    print(hashlib.sha256(weights).hexdigest(), hashlib.sha256(proba).hexdigest())
"""


def fit_in_fresh_process(*seeds: int) -> list[str]:
    """Each seed's weights and probabilities digests, fitted one after another in one new process."""
    code = FIT_AND_HASH.format(seeds=list(seeds))
    done = subprocess.run([sys.executable, "-c", code], env=project_env(), capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-len(seeds) :]


def test_same_random_state_gives_identical_weights_in_two_fresh_processes():
    (first,), (second, other_seed) = fit_in_fresh_process(7), fit_in_fresh_process(7, 8)
    assert first == second  # each its process's first fit
    assert other_seed != first


def test_docstring_example_runs():
    import doctest

    import bnlab.ml.estimator

    failed, attempted = doctest.testmod(bnlab.ml.estimator, verbose=False)
    assert attempted >= 4 and failed == 0


# --- training budget in steps, callbacks every N steps --------------------------------------


class EverySteps:
    """Records the steps at which it is called and the epochs it saw end."""

    def __init__(self, every_steps):
        self.every_steps = every_steps
        self.steps, self.epochs = [], []

    def on_step_end(self, step, logs):
        self.steps.append(step)

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(epoch)


@pytest.mark.parametrize("steps", [1, 12, 13, 40])  # 400 rows / 32 = 13 steps per epoch
def test_a_step_budget_is_met_exactly_across_epoch_boundaries(steps):
    recorder = EverySteps(5)
    clf = KerasMLPClassifier(**{**FAST, "epochs": 1}, steps=steps, callbacks=[recorder]).fit(X, Y)
    assert clf.n_steps_ == steps
    assert clf.n_iter_ == -(-steps // 13) == len(clf.history_["train_loss"])  # epochs begun
    assert recorder.steps == list(range(5, steps + 1, 5))
    assert recorder.epochs == list(range(clf.n_iter_))


def test_step_callbacks_do_not_change_what_is_learned():
    """Chunks of the compiled loop end where a hook is due; the arithmetic is the same."""
    plain = KerasMLPClassifier(**FAST).fit(X, Y)
    hooked = KerasMLPClassifier(**FAST, callbacks=[EverySteps(3), EverySteps(7)]).fit(X, Y)
    for a, b in zip(plain.model_.get_weights(), hooked.model_.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_callback_can_stop_a_step_budget_at_an_epoch_end():
    class StopAtFirstEpoch:
        def set_model(self, model):
            self.model = model

        def on_epoch_end(self, epoch, logs):
            self.model.stop_training = True

    clf = KerasMLPClassifier(**FAST, steps=100, callbacks=[StopAtFirstEpoch()]).fit(X, Y)
    assert (clf.n_steps_, clf.n_iter_) == (13, 1)


@pytest.mark.parametrize(
    "settings, layers",
    [
        ({"bn_position": "after"}, ["FixedOrderDense", "Activation", "BatchNormalization"]),
        (
            {"noise_shift": 1.0, "noise_scale": 2.0},
            ["FixedOrderDense", "BatchNormalization", "RandomShiftScale", "Activation"],
        ),
    ],
)
def test_network_variants_put_their_layers_in_order(settings, layers):
    clf = KerasMLPClassifier(**{**FAST, "hidden_units": (8,)}, **settings).fit(X, Y)
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds[kinds.index("FixedOrderDense") : kinds.index("FixedOrderDense") + len(layers)] == layers


def test_noise_is_injected_in_training_only_and_redrawn_every_call():
    from bnlab.ml.model import RandomShiftScale

    noise = RandomShiftScale(shift=1.0, scale=2.0, seed=0)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(np.asarray(noise(x, training=False)), x)
    first, second = np.asarray(noise(x, training=True)), np.asarray(noise(x, training=True))
    assert not np.allclose(first, second)  # a new draw every step
    assert np.allclose(first, first[0])  # per unit: every sample of the batch gets the same
    # x·scale + shift for x = 1: scale in [1/2, 2], shift in [-1, 1]
    assert np.all((first >= 0.5 - 1 - 1e-6) & (first <= 2 + 1 + 1e-6))


def test_gaussian_init_uses_the_given_scale():
    clf = KerasMLPClassifier(**{**FAST, "epochs": 1}, init_std=0.01, steps=1, learning_rate=1e-9).fit(X, Y)
    kernel = clf.model_.get_layer("dense_1").get_weights()[0]
    assert 0.008 < kernel.std() < 0.012 and abs(kernel.mean()) < 0.002


def test_new_settings_survive_save_and_load(tmp_path):
    clf = KerasMLPClassifier(**FAST, bn_position="after", init_std=0.05, noise_shift=0.5, steps=20).fit(X, Y)
    for fmt in ("keras", "npz"):
        loaded = KerasMLPClassifier.load(clf.save(tmp_path / fmt, format=fmt))
        assert loaded.get_params()["bn_position"] == "after" and loaded.n_steps_ == 20
        np.testing.assert_array_equal(loaded.predict_proba(X_TEST), clf.predict_proba(X_TEST))


def test_the_inference_network_of_a_noisy_model_predicts_the_same_with_keras_layers_only(tmp_path):
    from bnlab.ml.model import inference_network

    clf = KerasMLPClassifier(**FAST, noise_shift=0.5, noise_scale=2.0).fit(X, Y)
    network = inference_network(clf.model_)
    assert "RandomShiftScale" not in {type(layer).__name__ for layer in network.layers}
    network.save(tmp_path / "network.keras")
    # Loaded by a process that never imports bnlab, so RandomShiftScale is unknown there: only
    # the two files the served model carries beside it (bnlab.tracking.models).
    for module in (tf_runtime, fixed_order):
        shutil.copy(module.__file__, tmp_path)
    code = (
        f"import tf_runtime, fixed_order, sys, keras, numpy as np;"
        f"assert not any(name.startswith('bnlab') for name in sys.modules);"
        f"m = keras.saving.load_model({str(tmp_path / 'network.keras')!r});"
        f"np.save({str(tmp_path / 'out.npy')!r}, np.asarray(m(np.load({str(tmp_path / 'x.npy')!r}))))"
    )
    np.save(tmp_path / "x.npy", X_TEST.astype(np.float32))
    subprocess.run([sys.executable, "-c", code], check=True, env=project_env(), cwd=tmp_path)
    expected = np.asarray(clf.model_(X_TEST.astype(np.float32), training=False))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-6, atol=1e-6)


def test_uint8_pixels_train_the_same_model_as_their_float32_values():
    # Raw pixels may stay uint8 (a quarter of the memory); the network gets the same float32s.
    pixels = MNIST.x_train.reshape(400, -1)
    settings = dict(FAST, rescale=1 / 255)
    test_pixels = MNIST.x_test.reshape(100, -1)
    as_uint8 = KerasMLPClassifier(**settings).fit(pixels, Y, validation_data=(test_pixels, MNIST.y_test))
    as_float = KerasMLPClassifier(**settings).fit(
        pixels.astype(np.float32), Y, validation_data=(X_TEST * 255, MNIST.y_test)
    )
    assert pixels.dtype == np.uint8
    for a, b in zip(as_uint8.model_.get_weights(), as_float.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert as_uint8.history_ == as_float.history_
    np.testing.assert_array_equal(as_uint8.predict_proba(test_pixels), as_float.predict_proba(X_TEST * 255))


def test_evaluation_batch_size_changes_no_prediction():
    clf = KerasMLPClassifier(**FAST).fit(X, Y)
    small = clf.predict(X_TEST)
    clf.set_params(eval_batch_size=7)  # chunks of 7 rows, the last one shorter
    np.testing.assert_array_equal(clf.predict(X_TEST), small)


def test_a_diverged_network_is_evaluated_with_no_loss_and_its_accuracy():
    from bnlab.ml.evaluation import evaluate

    clf = KerasMLPClassifier(**FAST).fit(X, Y)
    finite = evaluate(clf, X_TEST, MNIST.y_test)
    assert np.isfinite(finite["test_loss"])
    kernel = clf.model_.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, dtype=np.float32))  # what exploding gradients leave
    diverged = evaluate(clf, X_TEST, MNIST.y_test)
    assert np.isnan(diverged["test_loss"])
    assert diverged["test_accuracy"] == accuracy_score(MNIST.y_test, diverged["predicted"])
