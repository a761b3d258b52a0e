"""Probes: what happens inside a network while it trains, measured every N optimizer steps.

:class:`ProbeRecorder` is a step callback of :class:`bnlab.estimator.KerasMLPClassifier`
(``every_steps`` + ``on_step_end``). At each probe it measures, in inference mode:

- for each hidden layer, the input to the nonlinearity (after BN and noise where they come
  first) on a fixed set of validation images: its 15th, 50th and 85th percentiles for one fixed
  unit (what Ioffe & Szegedy plot in Figure 1) and pooled over all units;
- the fraction of dead units: units whose nonlinearity gives no positive output on any probe
  image (a ReLU switched off; a sigmoid is never dead by this definition);
- accuracy on the whole validation and test sets;
- for networks with BN, the validation accuracy in training mode, that is with each mini-batch
  of ``batch_size`` validation images normalized by its own statistics as during training
  (whole batches only; the last partial one is left out), against the moving averages used at
  inference: what the moving averages cost.

Rows go to ``probe_rows`` and ``step_rows`` (the columns of reports/<experiment>/probes.csv and
steps.csv) and to ``on_record``, if given, as they are measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnlab.model import has_batch_norm, nonlinearity_model
from bnlab.columns import PERCENTILES
from bnlab.tf_runtime import tf


def percentiles(values: np.ndarray) -> dict[str, float]:
    found = np.percentile(values, list(PERCENTILES.values()))
    return {name: float(v) for name, v in zip(PERCENTILES, found)}


def layer_rows(step: int, layer: int, pre: np.ndarray, post: np.ndarray, unit: int) -> list[dict]:
    """The two probe rows of one hidden layer: the fixed unit, and all units pooled.
    ``pre``/``post``: the nonlinearity's input/output, one row per probe image."""
    dead = np.max(post, axis=0) <= 0  # per unit: never positive on any probe image
    return [
        {"step": step, "layer": layer, "unit": str(unit), **percentiles(pre[:, unit]),
         "dead_fraction": float(dead[unit])},
        {"step": step, "layer": layer, "unit": "all", **percentiles(pre),
         "dead_fraction": float(dead.mean())},
    ]


class ProbeRecorder:
    """Measure the network every ``every_steps`` optimizer steps (see the module's docstring).

    ``validation`` and ``test``: (X, class index) pairs, X as the estimator gets it; the probe
    images are the first ``probe_images`` validation images; ``unit``: the fixed unit's index in
    every hidden layer; ``batch_size``: the training batch size, for the training-mode accuracy.
    """

    def __init__(self, every_steps: int, validation, test, n_hidden: int, probe_images: int = 1000,
                 unit: int = 0, batch_size: int = 32,
                 on_record: Callable[[int, list[dict], dict], None] | None = None):
        self.every_steps = int(every_steps)
        self.validation = (np.asarray(validation[0], np.float32), np.asarray(validation[1]))
        self.test = (np.asarray(test[0], np.float32), np.asarray(test[1]))
        self.probe_x = self.validation[0][:probe_images]
        self.n_hidden, self.unit, self.batch_size = n_hidden, unit, batch_size
        self.on_record = on_record
        self.probe_rows: list[dict] = []
        self.step_rows: list[dict] = []

    def set_model(self, model) -> None:
        self.model = model
        inner = nonlinearity_model(model, self.n_hidden)
        self._inner = tf.function(lambda x: inner(x, training=False))
        self._logits = tf.function(lambda x: model(x, training=False))
        self._with_bn = has_batch_norm(model)
        x_val = self.validation[0]
        n_batches = len(x_val) // self.batch_size
        # Whole training-size batches only: BN's statistics are the batch's own.
        self._batches = tf.constant(x_val[: n_batches * self.batch_size].reshape(
            n_batches, self.batch_size, -1))
        self._train_mode_labels = self.validation[1][: n_batches * self.batch_size]
        self._tensors = {name: tf.constant(x) for name, (x, _) in
                         (("validation", self.validation), ("test", self.test))}
        self._probe = tf.constant(self.probe_x)

        @tf.function
        def train_mode_logits(batches):
            # stateless_call: training-mode BN without touching the moving averages (or the
            # noise layers' random state) that training goes on with.
            trainable = [v.value for v in model.trainable_variables]
            fixed = [v.value for v in model.non_trainable_variables]
            return tf.map_fn(lambda xb: model.stateless_call(trainable, fixed, xb, training=True)[0],
                             batches)

        self._train_mode_logits = train_mode_logits

    def on_step_end(self, step: int, logs=None) -> None:
        rows = []
        outputs = [t.numpy() for t in self._inner(self._probe)]
        for layer in range(1, self.n_hidden + 1):
            pre, post = outputs[2 * layer - 2], outputs[2 * layer - 1]
            rows += layer_rows(step, layer, pre, post, self.unit)
        accuracy = {"step": step,
                    "val_accuracy": self._accuracy(self._tensors["validation"], self.validation[1]),
                    "test_accuracy": self._accuracy(self._tensors["test"], self.test[1]),
                    "train_mode_accuracy": self._train_mode_accuracy() if self._with_bn else None}
        self.probe_rows += rows
        self.step_rows.append(accuracy)
        if self.on_record is not None:
            self.on_record(step, rows, accuracy)

    def _accuracy(self, x, labels: np.ndarray) -> float:
        return float(np.mean(np.argmax(self._logits(x).numpy(), axis=1) == labels))

    def _train_mode_accuracy(self) -> float:
        logits = self._train_mode_logits(self._batches).numpy().reshape(-1, self._n_classes())
        return float(np.mean(np.argmax(logits, axis=1) == self._train_mode_labels))

    def _n_classes(self) -> int:
        return int(self.model.output.shape[-1])
