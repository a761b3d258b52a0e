"""What one optimizer step sees, measured as Santurkar et al. (2018) measure it: the loss
landscape along the step (section 3.1, Figure 4) and internal covariate shift (Definition 2.1,
Figure 3).

:class:`GeometryProbe` is a batch callback of :class:`bnlab.ml.estimator.KerasMLPClassifier`
(``batch_steps``). Just before a watched step t it keeps the weights w (every trainable
variable: Dense kernels and biases, BN's γ and β), the rest of the network's state and the
step's mini-batch; just after it, the weights w′ the optimizer made of them. Then, on that
batch, in training mode (BN normalizes by the batch's own statistics, as the step did), through
Keras's stateless calls: BN's moving averages and the noise layers' random state are read,
never written, so training goes on as if nothing had been measured, and noisy BN's noise is the
step's own, the same at every point of one probe.

- The landscape, for each direction d: ``gradient`` (g = ∇L(w), the paper's),
  ``gradient_fixed_length`` (g's direction at the length √P, P the number of Dense kernel
  entries: the same for every variant of one architecture, so that ‖η·d‖ = m·lr·√P at every step
  and in every network; m·lr·√P is the length of Adam's first step, where every kernel entry
  moves by lr), ``update``
  ((w − w′)/lr, the optimizer's actual step per unit of learning rate: the lab trains with Adam,
  the paper with SGD, where the two coincide; η = lr lands on w′) and ``random`` (a control:
  Gaussian, scaled variable by variable to g's norm, drawn by NumPy from the job's seed and the
  step),
  and each η = m·lr for the multiples m: L(w − η·d), ‖∇L(w − η·d) − g‖₂ and ‖η·d‖₂ (over every
  trainable variable).
- ICS for layer i = 2 .. k+1 (the k hidden layers' Dense layers, then the output layer; layer 1
  has nothing below it): G = the loss's gradient with respect to layer i's Dense kernel at w;
  G′ = the same gradient after layers 1..i−1 take their w′ values (each one's Dense kernel and
  bias and its BN's γ and β: everything that shapes layer i's input), layer i and above kept
  at w. Rows: ‖G − G′‖₂ and cos(G, G′).

The network's forward and backward pass is one XLA-compiled function (its sums in a fixed order,
:mod:`bnlab.ml.fixed_order`); the points, differences and norms around it are NumPy's
(elementwise in float32, norms summed in float64), so they do not depend on the CPU either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bnlab.ml.compiled import template_for
from bnlab.ml.model import block_layer_names
from bnlab.ml.probe_rows import DIRECTIONS
from bnlab.ml.tf_runtime import keras, tf


class GeometryProbe:
    """Measure the landscape and ICS around each optimizer step in ``steps`` (see the module's
    docstring). ``multiples``: η in units of ``learning_rate``; ``seed``: the random directions'.
    Rows go to ``landscape_rows`` and ``ics_rows`` (the columns of
    :data:`bnlab.ml.probe_rows.LANDSCAPE_COLUMNS` and ``ICS_COLUMNS``) and to ``on_record``."""

    def __init__(
        self,
        steps: Sequence[int],
        learning_rate: float,
        multiples: Sequence[float],
        directions: Sequence[str] = DIRECTIONS,
        n_hidden: int = 2,
        seed: int = 0,
        on_record: Callable[[int, list[dict], list[dict]], None] | None = None,
    ):
        unknown = sorted(set(directions) - set(DIRECTIONS))
        if unknown:
            raise ValueError(f"unknown landscape directions {unknown}; known: {', '.join(DIRECTIONS)}")
        self.batch_steps = tuple(sorted({int(s) for s in steps}))
        self.learning_rate, self.multiples = float(learning_rate), tuple(float(m) for m in multiples)
        self.directions, self.n_hidden, self.seed = tuple(directions), int(n_hidden), int(seed)
        self.on_record = on_record
        self.landscape_rows: list[dict] = []
        self.ics_rows: list[dict] = []

    def tables(self) -> dict[str, list[dict]]:
        """The rows measured, by file (:data:`bnlab.ml.probe_rows.TABLES`)."""
        return {"landscape.csv": self.landscape_rows, "ics.csv": self.ics_rows}

    def set_model(self, model) -> None:
        self.model = model
        template = template_for(model)
        self._loss_gradient = template.function(("loss_gradient",), lambda: _compile_loss_gradient(template.model))
        self._layers = layer_variables(template.model, self.n_hidden)
        self._fixed_length = np.sqrt(kernel_entries(template.model))

    def on_train_batch_begin(self, step: int, logs) -> None:
        self._before = (
            [v.numpy() for v in self.model.trainable_variables],
            [v.numpy() for v in self.model.non_trainable_variables],
            logs["x"],
            logs["y"],
        )

    def on_train_batch_end(self, step: int, logs=None) -> None:
        weights, state, x, y = self._before
        self._before = None
        after = [v.numpy() for v in self.model.trainable_variables]

        def at(point: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
            loss, gradient = self._loss_gradient(point, state, x, y)
            return float(loss), [g.numpy() for g in gradient]

        rng = np.random.default_rng([self.seed, step])
        landscape, shift = measure_step(
            at,
            weights,
            after,
            self.learning_rate,
            self.multiples,
            self.directions,
            self._layers,
            rng,
            self._fixed_length,
        )
        landscape = [{"step": step, **row} for row in landscape]
        shift = [{"step": step, **row} for row in shift]
        self.landscape_rows += landscape
        self.ics_rows += shift
        if self.on_record is not None:
            self.on_record(step, landscape, shift)


def measure_step(
    at,
    weights: list[np.ndarray],
    after: list[np.ndarray],
    learning_rate: float,
    multiples: Sequence[float],
    directions: Sequence[str],
    layers: list[tuple[int, list[int]]],
    rng: np.random.Generator,
    fixed_length: float,
) -> tuple[list[dict], list[dict]]:
    """The landscape rows (direction, eta, loss, grad_change, distance) and the covariate-shift
    rows (layer, ics_l2, ics_cosine) of one step from w = ``weights`` to w′ = ``after``;
    ``at(point)`` gives the loss and gradient at a point, on the step's batch;
    ``fixed_length``: the length of the ``gradient_fixed_length`` direction."""
    _, gradient = at(weights)
    along = {
        "gradient": lambda: gradient,
        "gradient_fixed_length": lambda: scaled_to(gradient, fixed_length),
        "update": lambda: [(w - a) / np.float32(learning_rate) for w, a in zip(weights, after)],
        "random": lambda: random_like(gradient, rng),
    }
    landscape = []
    for direction in directions:
        d = along[direction]()
        length = norm(d)
        for multiple in multiples:
            eta = np.float32(multiple * learning_rate)
            loss, moved = at([w - eta * t for w, t in zip(weights, d)])
            landscape.append(
                {
                    "direction": direction,
                    "eta": multiple,
                    "loss": loss,
                    "grad_change": norm([m - g for m, g in zip(moved, gradient)]),
                    "distance": float(eta) * length,
                }
            )
    shift = []
    for layer, (kernel, below) in enumerate(layers, start=2):
        _, shifted = at([after[i] if i in below else w for i, w in enumerate(weights)])
        g, g_shifted = gradient[kernel].astype(np.float64), shifted[kernel].astype(np.float64)
        shift.append(
            {
                "layer": layer,
                "ics_l2": norm([g - g_shifted]),
                "ics_cosine": float(np.sum(g * g_shifted) / (norm([g]) * norm([g_shifted]))),
            }
        )
    return landscape, shift


def scaled_to(direction: list[np.ndarray], length: float) -> list[np.ndarray]:
    """``direction`` scaled to the Euclidean ``length`` over all its arrays together."""
    factor = np.float32(length / norm(direction))
    return [d * factor for d in direction]


def kernel_entries(model: keras.Model) -> int:
    """The number of entries of the network's Dense kernels: the same whether BN follows them
    or not (BN's γ and β and the Dense biases, which BN networks may drop, are not counted)."""
    return sum(int(np.prod(layer.kernel.shape)) for layer in model.layers if isinstance(layer, keras.layers.Dense))


def random_like(gradient: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A Gaussian direction with each variable's part as long as the gradient's."""
    found = []
    for g in gradient:
        z = rng.standard_normal(g.shape)
        found.append((z * (norm([g]) / norm([z]))).astype(np.float32))
    return found


def norm(arrays) -> float:
    """The Euclidean norm of several arrays together, summed in float64."""
    return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))


def layer_variables(model: keras.Model, n_hidden: int) -> list[tuple[int, list[int]]]:
    """For each layer i = 2 .. n_hidden+1: (the index of its Dense kernel among
    ``model.trainable_variables``, the indices of every trainable variable of layers 1..i−1)."""
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}

    def indices(layer: int) -> list[int]:
        return [
            index[id(v)] for name in block_layer_names(model, layer) for v in model.get_layer(name).trainable_variables
        ]

    return [
        (
            index[id(model.get_layer(block_layer_names(model, layer)[0]).kernel)],
            [i for below in range(1, layer) for i in indices(below)],
        )
        for layer in range(2, n_hidden + 2)
    ]


def _compile_loss_gradient(model):
    """The training loss and its gradient at given weights on a batch, in training mode, as one
    XLA-compiled function over ``model`` (a template of :mod:`bnlab.ml.compiled`: compiled once
    per process and configuration). Stateless: BN's moving averages and the noise layers' random
    state are inputs (``state``), never updated."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=True, autograph=False)
    def loss_gradient(trainable, state, x, y):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            logits, _ = model.stateless_call(trainable, state, x, training=True)
            loss = loss_fn(y, logits)
        return loss, tape.gradient(loss, trainable)

    return loss_gradient
