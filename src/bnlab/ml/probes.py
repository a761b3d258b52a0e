"""Probes: what happens inside a network while it trains, measured every N optimizer steps.

:class:`ProbeRecorder` is a step callback of :class:`bnlab.ml.estimator.KerasMLPClassifier`
(``every_steps`` + ``on_step_end``). At each probe it measures, in inference mode:

- for each hidden layer, the input to the nonlinearity (after BN and noise where they come
  first) on a fixed set of validation images: its 15th, 50th and 85th percentiles for one fixed
  unit (what Ioffe & Szegedy plot in Figure 1) and pooled over all units;
- the fraction of dead units: units whose nonlinearity gives no positive output on any probe
  image (a ReLU switched off; a sigmoid is never dead by this definition);
- accuracy on the probe images (``val_accuracy``) and on the whole test set;
- for networks with BN, the accuracy on the same probe images in training mode, that is with
  each mini-batch of ``batch_size`` images normalized by its own statistics as during training
  (whole batches only), against the moving averages used at inference: what the moving
  averages cost.

Rows go to ``probe_rows`` and ``step_rows`` (:mod:`bnlab.ml.probe_rows`: the columns of
reports/<experiment>/probes.csv and steps.csv) and to ``on_record``, if given, as they are measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnlab.ml.compiled import template_for
from bnlab.ml.loop import as_tensor
from bnlab.ml.model import has_batch_norm, nonlinearity_model
from bnlab.ml.probe_rows import layer_rows
from bnlab.ml.tf_runtime import tf


class ProbeRecorder:
    """Measure the network every ``every_steps`` optimizer steps (see the module's docstring).

    ``validation`` and ``test``: (X, class index) pairs, X as the estimator gets it; the probe
    images are the first ``probe_images`` validation images; ``unit``: the fixed unit's index in
    every hidden layer; ``batch_size``: the training batch size, for the training-mode accuracy.
    """

    def __init__(
        self,
        every_steps: int,
        validation,
        test,
        n_hidden: int,
        probe_images: int = 1000,
        unit: int = 0,
        batch_size: int = 32,
        on_record: Callable[[int, list[dict], dict], None] | None = None,
    ):
        self.every_steps = int(every_steps)
        # As given: uint8 pixels stay uint8 (a quarter of float32's memory), cast at each probe.
        self.test = (np.asarray(test[0]), np.asarray(test[1]))
        self.probe_x = np.asarray(validation[0][:probe_images], np.float32)
        self.probe_y = np.asarray(validation[1])[:probe_images]
        self.n_hidden, self.unit, self.batch_size = n_hidden, unit, batch_size
        self.on_record = on_record
        self.probe_rows: list[dict] = []
        self.step_rows: list[dict] = []

    def set_model(self, model) -> None:
        self.model = model
        n_batches = len(self.probe_x) // self.batch_size
        whole = n_batches * self.batch_size  # whole training-size batches: their own statistics
        self._train_mode_labels = self.probe_y[:whole]
        self._inputs = (
            tf.constant(self.probe_x),
            as_tensor(self.test[0]),
            tf.constant(self.probe_x[:whole].reshape(n_batches, self.batch_size, -1)),
        )
        template = template_for(model)
        shapes = tuple(tuple(t.shape) + (t.dtype.name,) for t in self._inputs)
        compiled = template.function(
            ("probe", self.n_hidden) + shapes,
            lambda: _compile_measure(template.model, self.n_hidden, has_batch_norm(model)),
        )

        def measure(*inputs):
            with template.loaded(model):
                return compiled(*inputs)

        self._measure = measure

    def tables(self) -> dict[str, list[dict]]:
        """The rows measured, by file (:data:`bnlab.ml.probe_rows.TABLES`)."""
        return {"probes.csv": self.probe_rows, "steps.csv": self.step_rows}

    def on_step_end(self, step: int, logs=None) -> None:
        inner, probe_pred, test_pred, train_mode_pred = (
            [t.numpy() for t in part] if isinstance(part, (list, tuple)) else part.numpy()
            for part in self._measure(*self._inputs)
        )
        rows = []
        for layer in range(1, self.n_hidden + 1):
            rows += layer_rows(step, layer, inner[2 * layer - 2], inner[2 * layer - 1], self.unit)
        accuracy = {
            "step": step,
            "val_accuracy": float(np.mean(probe_pred == self.probe_y)),
            "test_accuracy": float(np.mean(test_pred == self.test[1])),
            "train_mode_accuracy": (
                float(np.mean(train_mode_pred.reshape(-1) == self._train_mode_labels)) if train_mode_pred.size else None
            ),
        }
        self.probe_rows += rows
        self.step_rows.append(accuracy)
        if self.on_record is not None:
            self.on_record(step, rows, accuracy)


def _compile_measure(model, n_hidden: int, with_batch_norm: bool):
    """Everything a probe measures as one XLA-compiled function over ``model`` (a template of
    :mod:`bnlab.ml.compiled`): one compilation per process and configuration, one call per
    probe."""
    inner_model = nonlinearity_model(model, n_hidden)

    @tf.function(jit_compile=True)
    def measure(probe, test, batches):
        predict = lambda x: tf.argmax(model(x, training=False), axis=-1)  # noqa: E731
        inner = inner_model(probe, training=False)
        if with_batch_norm:
            # stateless_call: training-mode BN without touching the moving averages (or the noise
            # layers' random state) that training goes on with. map_fn, not vectorized_map:
            # the latter's conversion costs seconds per fit.
            trainable = [v.value for v in model.trainable_variables]
            fixed = [v.value for v in model.non_trainable_variables]
            train_mode = tf.map_fn(
                lambda xb: tf.argmax(model.stateless_call(trainable, fixed, xb, training=True)[0], axis=-1),
                batches,
                fn_output_signature=tf.int64,
            )
        else:
            train_mode = tf.zeros([0], tf.int64)
        return inner, predict(probe), predict(tf.cast(test, tf.float32)), train_mode

    return measure
