"""The compiled training loop: optimizer steps run inside XLA, in chunks between hooks.

A chunk of steps is one call of one XLA-compiled function (a ``tf.range`` loop over
mini-batches: Keras's own forward pass, gradient and optimizer update), so Python runs only
between chunks.
Chunks end where something has to happen: at an epoch's end (a new shuffle, the epoch hooks),
where a step hook is due (every N steps), and at the step budget. Without step hooks a chunk is a
whole epoch (two calls where the last batch is smaller).

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


@dataclass(frozen=True)
class StepHook:
    """``call(step)`` after every ``every`` optimizer steps (steps counted from 1)."""

    every: int
    call: Callable[[int], None]


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


def compile_train_steps(model, optimizer, batch_size: int):
    """``train_steps(x, y, batches, first, count)``: one optimizer step on each of the batches
    ``batches[first]`` .. ``batches[first+count-1]`` (``batches``: int32, one row of sample
    indices per step), as one XLA-compiled loop (no Python between steps) that runs on the
    template of ``model``'s configuration (:mod:`bnlab.ml.compiled`): compiled once per process
    and batch shape, not once per fit. XLA needs static shapes, so a batch is always a whole row:
    :func:`run` gives an epoch's last, smaller batch its own one-row call."""
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
                twin.apply_gradients(zip(tape.gradient(loss, variables), variables))
                return index + 1

            tf.while_loop(lambda index: index < first + count, step, [first])

        return steps

    compiled = template.function(("train", id(twin)), build)

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
    return (tf.constant(order[:whole].reshape(-1, batch_size), tf.int32),
            tf.constant(rest.reshape(1, -1), tf.int32) if rest.size else None)


def run(train_steps, x, y, batch_size: int, budget: Budget, rng: np.random.Generator,
        shuffle: bool = True, step_hooks: Sequence[StepHook] = (),
        on_epoch_end: Callable[[int], bool] | None = None) -> tuple[int, int]:
    """Train until the budget is spent or ``on_epoch_end(epoch)`` returns True.

    ``x``, ``y`` are tensors already on the device (``x`` float32, or uint8 pixels: each
    batch is cast when drawn). Each epoch draws a new order from ``rng``
    (one permutation per epoch, so results do not depend on where the chunks end). Returns
    (steps run, epochs begun).
    """
    n = int(y.shape[0])
    whole_batches = n // batch_size
    steps_per_epoch = math.ceil(n / batch_size)
    step = epoch = 0
    while (epoch_steps := budget.steps_in_epoch(epoch, steps_per_epoch, step)) > 0:
        whole, last = epoch_batches(rng.permutation(n) if shuffle else np.arange(n), batch_size)
        done = 0
        while done < epoch_steps:
            count = epoch_steps - done
            for hook in step_hooks:  # stop where the next hook is due
                count = min(count, hook.every - step % hook.every)
            if done < whole_batches:
                train_steps(x, y, whole, done, min(count, whole_batches - done))
            if done + count > whole_batches:  # the epoch's last, smaller batch
                train_steps(x, y, last, 0, 1)
            done += count
            step += count
            for hook in step_hooks:
                if step % hook.every == 0:
                    hook.call(step)
        epoch += 1
        if on_epoch_end is not None and on_epoch_end(epoch - 1):
            break
    return step, epoch
