"""One fit's training, as the estimator drives it: the compiled loop (:mod:`bnlab.ml.loop`) with
the estimator's gradient rule, its callbacks' hooks, and after each epoch the evaluation that
fills ``history_``. Nothing here knows scikit-learn's API; the estimator passes itself in."""

from __future__ import annotations

from bnlab.ml import loop
from bnlab.ml.gradient_rule import GradientRule
from bnlab.ml.hyperparams import batch_rows
from bnlab.ml.tf_runtime import tf

STEP_TIME = "seconds_per_step"  # in each epoch's callback logs, beside the history's values


def train(estimator, X, y, validation, optimizer, rng) -> None:
    """Train ``estimator.model_`` on ``X``, ``y`` (class indices) with ``optimizer``; set the
    estimator's ``n_steps_`` and ``n_iter_`` and append each epoch's
    ``estimator._evaluate_epoch`` to its ``history_``."""
    model = estimator.model_
    optimizer.build(model.trainable_variables)
    # Tensors, not arrays: converting 55,000 rows every epoch would cost more than evaluating them.
    x_all, y_all = loop.as_tensor(X), tf.constant(y)
    if validation is not None:
        validation = (loop.as_tensor(validation[0]), validation[1])
    # The rows the training set's metrics are measured on. No slice when they are all: TensorFlow
    # names its functions by a process-wide count, which the CPU fingerprints' programs carry.
    rows = estimator.measure_rows
    measured = (x_all, y) if rows is None else (x_all[:rows], y[:rows])
    callbacks = list(estimator.callbacks or [])
    step_hooks, batch_hooks = loop.callback_hooks(callbacks)
    budget = loop.Budget(estimator.epochs, estimator.steps)

    def on_epoch_end(epoch: int) -> bool:
        logs = estimator._evaluate_epoch(*measured, validation)
        for key, value in logs.items():
            estimator.history_[key].append(value)
        if estimator.verbose:
            print(f"epoch {epoch + 1} " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()))
        call(callbacks, "on_epoch_end", epoch, {**logs, STEP_TIME: train_steps.seconds_per_step()})
        return bool(model.stop_training)

    model.stop_training = False
    call(callbacks, "set_model", model)
    call(callbacks, "on_train_begin", {})
    rule = GradientRule.of(estimator.gradient_clipping, estimator.clip_factor, estimator.weight_decay)
    batch_size = batch_rows(estimator.batch_size, len(y))
    train_steps = loop.TimedSteps(loop.compile_train_steps(model, optimizer, batch_size, rule))
    estimator.n_steps_, estimator.n_iter_ = loop.run(
        train_steps, x_all, y_all, batch_size, budget, rng, estimator.shuffle, step_hooks, on_epoch_end, batch_hooks
    )
    call(callbacks, "on_train_end", {})


def call(callbacks, method: str, *args) -> None:
    """``method(*args)`` of every callback that has it, in order."""
    for callback in callbacks:
        hook = getattr(callback, method, None)
        if hook is not None:
            hook(*args)
