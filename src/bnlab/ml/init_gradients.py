"""The loss's gradient with respect to every hidden layer's pre-activations at initialization,
as Yang et al. (2019) state their gradient explosion: in a deep BN ReLU network the squared norm
grows by a factor λ(B) per layer going down (:mod:`bnlab.analysis.mean_field` holds the theory).

:class:`InitGradientProbe` is a batch callback of
:class:`bnlab.ml.estimator.KerasMLPClassifier` (``batch_steps``): just before the first optimizer
step, with the weights as initialized and that step's mini-batch, it measures, for each hidden
layer l, ‖∂L/∂h_l‖² where h_l is the layer's Dense output (BN's input; in a plain network the
activation's) and L the training loss (the batch's mean cross-entropy), summed over the batch
and the layer's units in float64. In training mode (BN normalizes by the batch's own statistics,
as the step does) through Keras's stateless call: BN's moving averages are read, never written,
so the fit goes on exactly as without the probe.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnlab.ml.compiled import template_for
from bnlab.ml.model import dense_name
from bnlab.ml.tf_runtime import keras, tf


class InitGradientProbe:
    """Rows (:data:`bnlab.ml.probe_rows.INIT_GRADIENT_COLUMNS`) of the first step's
    pre-activation gradients, one per hidden layer, in ``rows`` and to ``on_record``."""

    batch_steps = (1,)

    def __init__(self, n_hidden: int, on_record: Callable[[list[dict]], None] | None = None):
        self.n_hidden, self.on_record = int(n_hidden), on_record
        self.rows: list[dict] = []

    def tables(self) -> dict[str, list[dict]]:
        """The rows measured, by file (:data:`bnlab.ml.probe_rows.TABLES`)."""
        return {"init_gradients.csv": self.rows}

    def set_model(self, model) -> None:
        self.model = model
        template = template_for(model)
        self._gradients = template.function(
            ("pre_activation_gradients", self.n_hidden),
            lambda: _compile_pre_activation_gradients(template.model, self.n_hidden),
        )

    def on_train_batch_begin(self, step: int, logs) -> None:
        weights = [v.numpy() for v in self.model.trainable_variables]
        state = [v.numpy() for v in self.model.non_trainable_variables]
        gradients = self._gradients(weights, state, logs["x"], logs["y"])
        self.rows = [
            {
                "batch_size": int(len(logs["y"])),
                "depth": self.n_hidden,
                "width": int(g.shape[-1]),
                "layer": layer,
                "grad_sq_norm": float(np.sum(np.square(g.numpy(), dtype=np.float64))),
            }
            for layer, g in enumerate(gradients, start=1)
        ]
        if self.on_record is not None:
            self.on_record(self.rows)

    def on_train_batch_end(self, step: int, logs=None) -> None:
        """Nothing: the measurement is of the network before its first update."""


def _compile_pre_activation_gradients(model: keras.Model, n_hidden: int):
    """∂L/∂h_l for every hidden layer l, at given weights on a batch, in training mode, as one
    XLA-compiled function over ``model`` (a template of :mod:`bnlab.ml.compiled`). A second
    functional view of the same layers returns the Dense outputs beside the logits; the
    gradients are taken with respect to those very tensors."""
    view = keras.Model(
        model.inputs, [model.output, *(model.get_layer(dense_name(layer)).output for layer in range(1, n_hidden + 1))]
    )
    trainable = _positions(model.trainable_variables, view.trainable_variables)
    state = _positions(model.non_trainable_variables, view.non_trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=True, autograph=False)
    def pre_activation_gradients(weights, values, x, y):
        (logits, *pre), _ = view.stateless_call(
            [weights[i] for i in trainable], [values[i] for i in state], x, training=True
        )
        return tf.gradients(loss_fn(y, logits), pre)

    return pre_activation_gradients


def _positions(ordered, view_variables) -> list[int]:
    """Where each of the view's variables sits in the model's own list."""
    index = {id(v): i for i, v in enumerate(ordered)}
    return [index[id(v)] for v in view_variables]
