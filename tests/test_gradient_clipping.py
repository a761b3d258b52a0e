"""Adaptive gradient clipping (bnlab.ml.gradient_clipping) against a NumPy reference written
from Brock et al. (2021)'s definition, unit by unit with loops."""

import numpy as np
import pytest

from bnlab.ml.gradient_clipping import EPSILON, adaptive_clip, clipped
from bnlab.ml.tf_runtime import tf


def numpy_agc(gradient: np.ndarray, weight: np.ndarray, clip_factor: float) -> np.ndarray:
    """One unit at a time: a kernel's columns, or a vector (or a scalar) as one unit."""
    out = np.array(gradient, np.float64)
    units = [...] if gradient.ndim <= 1 else [(slice(None), j) for j in range(gradient.shape[1])]
    for unit in units:
        g, w = gradient[unit].astype(np.float64), weight[unit].astype(np.float64)
        largest = clip_factor * max(np.linalg.norm(w), EPSILON)
        if np.linalg.norm(g) > largest:
            out[unit] = g * largest / np.linalg.norm(g)
    return out


@pytest.mark.parametrize("shape", [(6, 4), (5,)], ids=["kernel", "vector"])
@pytest.mark.parametrize("clip_factor", [0.01, 0.16, 10.0])
def test_agc_matches_the_definition_unit_by_unit(shape, clip_factor):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=shape).astype(np.float32)
    gradient = (rng.normal(size=shape) * rng.uniform(0.001, 1, size=shape[-1])).astype(np.float32)
    if len(shape) == 2:
        weight[:, 0] = 0  # a zero-initialized unit: ε, not 0, bounds its gradient
    got = adaptive_clip(tf.constant(gradient), tf.constant(weight), clip_factor).numpy()
    np.testing.assert_allclose(got, numpy_agc(gradient, weight, clip_factor), rtol=2e-6, atol=1e-9)
    ratio = np.linalg.norm(got, axis=0) / np.maximum(np.linalg.norm(weight, axis=0), EPSILON)
    assert np.all(ratio <= clip_factor * (1 + 1e-5))  # what AGC promises


def test_only_the_chosen_variables_are_clipped():
    rng = np.random.default_rng(1)
    weights = [tf.constant(rng.normal(size=(3, 2)).astype(np.float32)) for _ in range(2)]
    gradients = [w * 100 for w in weights]
    first, last = clipped(gradients, weights, 0.01, [True, False])
    assert np.array_equal(last.numpy(), gradients[1].numpy())
    np.testing.assert_allclose(first.numpy(), numpy_agc(gradients[0].numpy(), weights[0].numpy(), 0.01), rtol=2e-6)
