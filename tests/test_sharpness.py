"""λ_max of the training loss's Hessian (bnlab.ml.sharpness) against the exact eigenvalues of a
tiny network's Hessian, built column by column from finite differences of an independent NumPy
gradient (test_geometry's forward and backward pass by hand), and the measurement's promises:
the same bytes each time, the network left as it was."""

import numpy as np
import pytest
from test_geometry import X_BATCH, Y_BATCH, known_trainable, numpy_loss_gradient

from bnlab.ml.model import build_mlp
from bnlab.ml.sharpness import lanczos_top_eigenvalue, top_hessian_eigenvalue, tridiagonal_top_eigenvalue


def finite_difference_hessian(weights: list[np.ndarray], batch_norm: bool, h: float = 1e-6) -> np.ndarray:
    """The Hessian of the NumPy loss, by central differences of its exact gradient (float64)."""
    shapes = [w.shape for w in weights]
    flat = np.concatenate([w.ravel() for w in weights])

    def gradient(point: np.ndarray) -> np.ndarray:
        parts, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            parts.append(point[start : start + size].reshape(shape))
            start += size
        _, grads = numpy_loss_gradient(parts, X_BATCH, Y_BATCH, batch_norm)
        return np.concatenate([g.ravel() for g in grads])

    columns = []
    for i in range(flat.size):
        step = np.zeros_like(flat)
        step[i] = h
        columns.append((gradient(flat + step) - gradient(flat - step)) / (2 * h))
    hessian = np.array(columns).T
    return (hessian + hessian.T) / 2


def tiny_network(batch_norm: bool):
    model = build_mlp(3, 2, (4, 2), batch_norm=batch_norm, activation="relu")
    for variable, value in zip(model.trainable_variables, known_trainable(batch_norm, 1)):
        variable.assign(value.astype(np.float32))
    return model


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_lambda_max_is_the_exact_hessians_top_eigenvalue(batch_norm):
    exact = np.linalg.eigvalsh(finite_difference_hessian(known_trainable(batch_norm, 1), batch_norm))
    model = tiny_network(batch_norm)
    size = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert exact[-1] > 2 * abs(exact[0])  # the top of the spectrum, not its most negative end
    assert top_hessian_eigenvalue(model, X_BATCH, Y_BATCH, iterations=size) == pytest.approx(exact[-1], rel=1e-4)
    # The default number of steps already finds it on a network this small.
    assert top_hessian_eigenvalue(model, X_BATCH, Y_BATCH) == pytest.approx(exact[-1], rel=1e-3)


def test_the_measurement_is_the_same_bytes_and_leaves_the_network_as_it_was():
    model = tiny_network(batch_norm=True)
    before = [v.numpy().copy() for v in model.variables]
    first = top_hessian_eigenvalue(model, X_BATCH, Y_BATCH, seed=4)
    assert top_hessian_eigenvalue(model, X_BATCH, Y_BATCH, seed=4) == first
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(model.variables, before))  # BN's averages too


def test_lanczos_finds_the_top_eigenvalue_of_a_known_matrix():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    spectrum = np.concatenate([[-9.0, 5.0, 4.0], rng.uniform(-3, 3, 57)])  # the largest in size is negative
    matrix = q @ np.diag(spectrum) @ q.T
    assert lanczos_top_eigenvalue(lambda v: matrix @ v, 60, 60, seed=1) == pytest.approx(5.0, rel=1e-12)
    assert lanczos_top_eigenvalue(lambda v: matrix @ v, 60, 30, seed=1) == pytest.approx(5.0, rel=1e-6)
    rank_one = np.outer(q[:, 0], q[:, 0]) * 7  # an invariant subspace after one step
    assert lanczos_top_eigenvalue(lambda v: rank_one @ v, 60, 20, seed=1) == pytest.approx(7.0, rel=1e-12)


def test_bisection_gives_a_tridiagonal_matrixs_top_eigenvalue():
    rng = np.random.default_rng(2)
    for size in (1, 2, 5, 30):
        d, e = rng.normal(size=size), rng.normal(size=size - 1)
        dense = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
        assert tridiagonal_top_eigenvalue(d, e) == pytest.approx(np.linalg.eigvalsh(dense)[-1], rel=1e-14, abs=1e-14)
