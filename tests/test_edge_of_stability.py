"""The sharpness probe inside training (bnlab.ml.sharpness.SharpnessProbe), full-batch gradient
descent (``batch_size: full`` on ``train_images``), their params' checks, and the table that
sets λ_max beside the stability threshold 2(1 + μ)/η (bnlab.analysis.sharpness_tables)."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from bnlab.analysis.sharpness_tables import (
    EDGE_HIGH,
    EDGE_LOW,
    LATE,
    edge_word,
    late_sharpness_per_run,
    sharpness_markdown,
    sharpness_table,
    stability_threshold,
)
from bnlab.experiments.params import ParamsError, parse_params
from bnlab.ml.estimator import KerasMLPClassifier
from bnlab.ml.probe_rows import SHARPNESS_COLUMNS
from bnlab.ml.sharpness import SharpnessProbe, top_hessian_eigenvalue, training_loss

from helpers import PROJECT, make_mnist

N = 96


@pytest.fixture(scope="module")
def data():
    mnist = make_mnist(N, 10)
    return mnist.x_train.reshape(N, -1), mnist.y_train


def fit(data, callbacks=None, batch_size="full", batch_norm=True):
    x, y = data
    return KerasMLPClassifier(
        hidden_units=(8,),
        optimizer="sgd",
        learning_rate=0.5,
        batch_size=batch_size,
        steps=12,
        batch_norm=batch_norm,
        rescale=1 / 255,
        random_state=3,
        callbacks=callbacks,
    ).fit(x, y)


def test_a_full_batch_is_every_training_row(data):
    full, explicit = fit(data), fit(data, batch_size=N)
    assert full.total_steps(N) == 12 and full.n_steps_ == 12
    for a, b in zip(full.model_.get_weights(), explicit.model_.get_weights()):
        assert np.array_equal(a, b)
    smaller = fit(data, batch_size=N // 2)
    assert not np.array_equal(full.model_.get_weights()[0], smaller.model_.get_weights()[0])


def test_the_probe_measures_lambda_max_at_its_steps_and_leaves_training_bit_identical(data):
    x, y = data
    probe = SharpnessProbe([1, 6, 12], x, y, seed=0)
    with_probe, without = fit(data, [probe]), fit(data)
    for a, b in zip(with_probe.model_.get_weights(), without.model_.get_weights()):
        assert np.array_equal(a, b)
    rows = pd.DataFrame(probe.tables()["sharpness.csv"], columns=SHARPNESS_COLUMNS)
    assert list(rows["step"]) == [1, 6, 12]
    # The last row is the trained network's: the same measurement made afterwards.
    assert rows["lambda_max"].iloc[-1] == top_hessian_eigenvalue(with_probe.model_, x.astype(np.float32), y, seed=0)
    assert rows["train_loss"].iloc[-1] == training_loss(with_probe.model_, x.astype(np.float32), y)
    assert (rows["lambda_max"] > 0).all() and rows["train_loss"].iloc[-1] < rows["train_loss"].iloc[0]


def test_the_threshold_is_two_over_the_rate_with_momentums_factor():
    assert stability_threshold("sgd", 0.4, 0.0) == 5.0
    assert stability_threshold("sgd", 0.1, 0.9) == pytest.approx(38.0)
    assert math.isnan(stability_threshold("adam", 0.01, 0.0))


@pytest.mark.parametrize(
    "low, high, word",
    [
        (EDGE_LOW, EDGE_HIGH, "at the edge"),
        (0.9, 1.1, "at the edge"),
        (0.3, EDGE_LOW - 0.01, "below"),
        (EDGE_HIGH + 0.01, 2.0, "above"),
        (0.7, 1.1, "undecided"),
        (math.nan, 1.0, "—"),
    ],
)
def test_the_edge_word_follows_the_stated_rule(low, high, word):
    assert edge_word(low, high) == word


def sharpness_rows():
    """Two rates × two variants × three seeds: plain's late λ_max at 2/η, BN's a tenth of it;
    early steps far from either, which the late median must ignore."""
    rows = []
    for rate in (0.2, 0.4):
        for variant, factor in (("batchnorm", 0.1), ("plain", 1.0)):
            for seed in range(3):
                for step in (1, 10, 40, 60, 80, 100):
                    late = factor * 2 / rate * (1 + 0.01 * seed)
                    value = 1.0 if step <= LATE * 100 else late
                    rows.append(
                        {
                            "learning_rate": rate,
                            "variant": variant,
                            "seed": seed,
                            "step": step,
                            "lambda_max": value,
                            "train_loss": 1.0,
                        }
                    )
    return pd.DataFrame(rows)


def test_the_table_sets_late_sharpness_beside_the_threshold():
    frame = sharpness_rows()
    settings = pd.DataFrame(
        [
            {"learning_rate": r, "variant": v, "optimizer": "sgd", "momentum": 0.0}
            for r in (0.2, 0.4)
            for v in ("batchnorm", "plain")
        ]
    )
    per_run = late_sharpness_per_run(frame)
    assert list(per_run.columns) == ["learning_rate", "variant", "seed", "value"] and len(per_run) == 12
    table = sharpness_table(frame, settings).set_index(["learning_rate", "variant"])
    assert table.loc[(0.4, "plain"), "threshold"] == 5.0
    assert table.loc[(0.4, "plain"), "late"] == pytest.approx(5.0 * 1.01)
    assert table.loc[(0.4, "plain"), "word"] == "at the edge"
    assert table.loc[(0.2, "batchnorm"), "word"] == "below"
    assert table.loc[(0.2, "batchnorm"), "peak"] == pytest.approx(1.0 * 1.01)  # the late value, above the early 1.0
    text = sharpness_markdown(frame, settings)
    assert "2(1+μ)/η" in text and "at the edge" in text and "below" in text
    assert sharpness_markdown(frame.iloc[:0], settings) == ""


def edge_params(**changes) -> dict:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    experiment = params["experiments"]["edge_of_stability"]
    for key, value in changes.items():
        experiment[key] = value
    return params


def test_params_refuse_a_full_batch_without_train_images():
    with pytest.raises(ParamsError, match="batch_size full needs train_images"):
        parse_params(edge_params(train_images=None))


def test_params_refuse_more_images_than_the_training_split():
    with pytest.raises(
        ParamsError, match="edge_of_stability.train_images: 56000 is more than the training split's 55000"
    ):
        parse_params(edge_params(train_images=56000, probes=None))


def test_params_refuse_a_probe_batch_beyond_the_training_images():
    probes = {"every_steps": 50, "images": 2000, "unit": 0, "sharpness": {"images": 3000, "every_steps": 5}}
    with pytest.raises(ParamsError, match="probes.sharpness.images: 3000 is more than the 2000 training images"):
        parse_params(edge_params(probes=probes))


@pytest.mark.parametrize(
    "sharpness, message",
    [
        ({"images": 100}, "give either every_steps or steps"),
        ({"images": 100, "every_steps": 5, "steps": [1, 2]}, "give either every_steps or steps"),
        ({"images": 100, "steps": "geometry"}, "no geometry probe to take steps from"),
        ({"images": 100, "steps": [1, 500]}, "probes.sharpness.steps: step 500 is beyond the 100 optimizer steps"),
    ],
)
def test_params_refuse_a_sharpness_schedule_that_cannot_run(sharpness, message):
    probes = {"every_steps": 50, "images": 2000, "unit": 0, "sharpness": sharpness}
    with pytest.raises(ParamsError, match=message):
        parse_params(edge_params(probes=probes))


def test_the_declared_experiments_measure_where_they_say():
    params = parse_params(yaml.safe_load((PROJECT / "params.yaml").read_text()))
    edge = params.experiment("edge_of_stability")
    for rate in edge.grid["learning_rate"]:
        assert edge.settings("plain", (("learning_rate", rate),)).batch_size == edge.train_images
    assert edge.probes.sharpness.images == edge.train_images  # λ_max of the loss descent minimizes
    assert len(edge.grid["learning_rate"]) >= 3 and len(edge.seeds) >= 6
    santurkar = params.experiment("santurkar").probes
    assert santurkar.sharpness_steps(17190) == santurkar.geometry.steps
