"""The compiled training loop: optimizer steps run inside XLA, in chunks between hooks.

A chunk of steps is one call of one XLA-compiled function (a ``tf.range`` loop over
mini-batches: Keras's own forward pass, gradient and optimizer update), so Python runs only
between chunks.
Chunks end where something has to happen: at an epoch's end (a new shuffle, the epoch hooks),
where a step hook is due (every N steps), around a step a batch hook watches (that step runs
alone, between the hook's two calls), and at the step budget. Without hooks a chunk is a whole
epoch (two calls where the last batch is smaller). Where the chunks end changes no result: each
step runs the same operations on the same batch.

Nothing here knows about scikit-learn; :class:`bnlab.ml.estimator.KerasMLPClassifier` drives it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bnlab.data.splits import aligned
from bnlab.ml.compiled import template_for
from bnlab.ml.gradient_rule import GradientRule
from bnlab.ml.tf_runtime import keras, tf


@dataclass(frozen=True)
class Budget:
    """How long to train: ``steps`` optimizer steps if given, else ``epochs`` passes."""

    epochs: int
    steps: int | None = None

    def steps_in_epoch(self, epoch: int, steps_per_epoch: int, steps_done: int) -> int:
        """Steps to run in ``epoch`` (counted from 0); 0 when the budget is spent."""
        if self.steps is None:
            return steps_per_epoch if epoch < self.epochs else 0
        return max(0, min(steps_per_epoch, self.steps - steps_done))

    def total(self, steps_per_epoch: int) -> int:
        """Every optimizer step of the fit."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch


@dataclass(frozen=True)
class StepHook:
    """``call(step)`` after every ``every`` optimizer steps (steps counted from 1)."""

    every: int
    call: Callable[[int], None]


@dataclass(frozen=True)
class BatchHook:
    """For each step in ``steps`` (counted from 1): ``before(step, x, y)`` just before that
    optimizer step, with its mini-batch (float32 rows as the network gets them, class
    indices), and ``after(step)`` just after it, when the step's update has been applied."""

    steps: frozenset[int]
    before: Callable[[int, object, object], None]
    after: Callable[[int], None]


def callback_hooks(callbacks) -> tuple[list[StepHook], list[BatchHook]]:
    """The step hooks of callbacks with ``every_steps`` (``on_step_end(step, {})``) and the
    batch hooks of callbacks with ``batch_steps`` (``on_train_batch_begin(step, {"x", "y"})``,
    ``on_train_batch_end(step, {})``), in the callbacks' order."""
    step_hooks = [
        StepHook(int(c.every_steps), lambda step, c=c: c.on_step_end(step, {}))
        for c in callbacks
        if getattr(c, "every_steps", None)
    ]
    batch_hooks = [
        BatchHook(
            frozenset(int(s) for s in c.batch_steps),
            lambda step, x, y, c=c: c.on_train_batch_begin(step, {"x": x, "y": y}),
            lambda step, c=c: c.on_train_batch_end(step, {}),
        )
        for c in callbacks
        if getattr(c, "batch_steps", None)
    ]
    return step_hooks, batch_hooks


class TimedSteps:
    """``train_steps``, timed: the wall seconds its calls took and the steps they ran, so that
    :meth:`seconds_per_step` says what one optimizer step costs, without the epoch's evaluation.
    Wall time differs run to run: it goes to the callbacks' logs, never into a model's files."""

    def __init__(self, train_steps):
        self.train_steps, self.seconds, self.steps = train_steps, 0.0, 0

    def __call__(self, x, y, batches, first: int, count: int) -> None:
        started = time.perf_counter()
        self.train_steps(x, y, batches, first, count)
        self.seconds += time.perf_counter() - started
        self.steps += count

    def seconds_per_step(self) -> float:
        """Since the last call (an epoch's steps, the first epoch's with XLA's compilation)."""
        found = self.seconds / max(self.steps, 1)
        self.seconds, self.steps = 0.0, 0
        return found


def as_tensor(array: np.ndarray):
    """A tensor on the array's own memory (through DLPack) where TensorFlow can use it in place:
    ``tf.constant`` holds two copies of its input (measured: 82 MiB for MNIST's 41 MiB of
    training pixels), in every worker. Else (read-only memory) a copy."""
    array = aligned(array)  # the prepared splits are (bnlab.data.splits.load_split): no copy
    if not array.flags.writeable:
        return tf.constant(array)
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


UNTOUCHED = GradientRule()  # the loss's gradient as it is


def compile_train_steps(model, optimizer, batch_size: int, rule: GradientRule = UNTOUCHED):
    """``train_steps(x, y, batches, first, count)``: one optimizer step on each of the batches
    ``batches[first]`` .. ``batches[first+count-1]`` (``batches``: int32, one row of sample
    indices per step), as one XLA-compiled loop (no Python between steps) that runs on the
    template of ``model``'s configuration (:mod:`bnlab.ml.compiled`): compiled once per process
    and batch shape, not once per fit. XLA needs static shapes, so a batch is always a whole row:
    :func:`run` gives an epoch's last, smaller batch its own one-row call. ``rule``: what happens
    to the gradient before the optimizer step (clipping, weight decay)."""
    template = template_for(model)
    twin = template.optimizer_like(optimizer)

    def build():
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        network, variables = template.model, template.model.trainable_variables

        # A plain while loop, not autograph's `for ... in tf.range`: that leaves a Range op whose
        # bounds XLA must know when compiling, so every new (first, count) compiled anew.
        @tf.function(jit_compile=True, autograph=False)
        def steps(x, y, batches, first, count):
            def step(index):
                batch = tf.gather(batches, index)
                xb, yb = tf.cast(tf.gather(x, batch), tf.float32), tf.gather(y, batch)
                with tf.GradientTape() as tape:
                    loss = loss_fn(yb, network(xb, training=True))
                gradients = rule.apply(tape.gradient(loss, variables), variables)
                twin.apply_gradients(zip(gradients, variables))
                return index + 1

            tf.while_loop(lambda index: index < first + count, step, [first])

        return steps

    compiled = template.function(("train", id(twin), rule), build)

    def train_steps(x, y, batches, first: int, count: int) -> None:
        with template.holding(model, optimizer, twin):
            compiled(x, y, batches, tf.constant(first, tf.int32), tf.constant(count, tf.int32))

    train_steps.compiled = compiled  # the XLA function itself (its HLO is inspected by the tests)
    return train_steps


def epoch_batches(order: np.ndarray, batch_size: int) -> tuple:
    """An epoch's sample order as (whole batches: steps × ``batch_size``, the last smaller batch
    as one row, or None)."""
    whole = len(order) // batch_size * batch_size
    rest = order[whole:]
    return (
        tf.constant(order[:whole].reshape(-1, batch_size), tf.int32),
        tf.constant(rest.reshape(1, -1), tf.int32) if rest.size else None,
    )


def run(
    train_steps,
    x,
    y,
    batch_size: int,
    budget: Budget,
    rng: np.random.Generator,
    shuffle: bool = True,
    step_hooks: Sequence[StepHook] = (),
    on_epoch_end: Callable[[int], bool] | None = None,
    batch_hooks: Sequence[BatchHook] = (),
) -> tuple[int, int]:
    """Train until the budget is spent or ``on_epoch_end(epoch)`` returns True.

    ``x``, ``y`` are tensors already on the device (``x`` float32, or uint8 pixels: each
    batch is cast when drawn). Each epoch draws a new order from ``rng``
    (one permutation per epoch, so results do not depend on where the chunks end). Returns
    (steps run, epochs begun). A batch hook's step beyond the budget is an error, raised first.
    """
    n = int(y.shape[0])
    whole_batches = n // batch_size
    steps_per_epoch = math.ceil(n / batch_size)
    _check_batch_hooks(batch_hooks, budget, steps_per_epoch)
    step = epoch = 0
    while (epoch_steps := budget.steps_in_epoch(epoch, steps_per_epoch, step)) > 0:
        whole, last = epoch_batches(rng.permutation(n) if shuffle else np.arange(n), batch_size)
        done = 0
        while done < epoch_steps:
            watching = [hook for hook in batch_hooks if step + 1 in hook.steps]
            count = 1 if watching else _chunk_length(epoch_steps - done, step, step_hooks, batch_hooks)
            if watching:
                xb, yb = _batch(x, y, whole[done] if done < whole_batches else last[0])
                for hook in watching:
                    hook.before(step + 1, xb, yb)
            if done < whole_batches:
                train_steps(x, y, whole, done, min(count, whole_batches - done))
            if done + count > whole_batches:  # the epoch's last, smaller batch
                train_steps(x, y, last, 0, 1)
            done += count
            step += count
            for hook in watching:
                hook.after(step)
            for hook in step_hooks:
                if step % hook.every == 0:
                    hook.call(step)
        epoch += 1
        if on_epoch_end is not None and on_epoch_end(epoch - 1):
            break
    return step, epoch


def _chunk_length(left: int, step: int, step_hooks: Sequence[StepHook], batch_hooks: Sequence[BatchHook]) -> int:
    """Steps to run from ``step`` on in one call: up to where the next step hook is due or
    just before the next step a batch hook watches (at least 1: that step is not the next)."""
    count = left
    for hook in step_hooks:
        count = min(count, hook.every - step % hook.every)
    for hook in batch_hooks:
        later = [s for s in hook.steps if s > step]
        if later:
            count = min(count, min(later) - step - 1)
    return count


def _batch(x, y, indices):
    return tf.cast(tf.gather(x, indices), tf.float32), tf.gather(y, indices)


def _check_batch_hooks(batch_hooks: Sequence[BatchHook], budget: Budget, steps_per_epoch: int) -> None:
    total = budget.total(steps_per_epoch)
    for hook in batch_hooks:
        beyond = sorted(s for s in hook.steps if not 1 <= s <= total)
        if beyond:
            raise ValueError(f"probe steps {beyond} are outside the fit's optimizer steps 1..{total}")
