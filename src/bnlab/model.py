"""The reference network: Dense → (BatchNormalization) → activation, per hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

from bnlab.tf_runtime import keras

OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
}


def build_mlp(
    n_features: int,
    n_classes: int,
    hidden_units: Sequence[int] = (32, 32),
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.99,
    rescale: float | None = None,
) -> keras.Model:
    """An MLP that outputs logits. BN sits between each Dense layer and its activation, as in
    Ioffe & Szegedy (2015) and the reference notebook."""
    inputs = keras.Input(shape=(n_features,), name="pixels")
    h = inputs
    if rescale is not None:
        # Part of the saved model, so a served model takes raw pixels as they come.
        h = keras.layers.Rescaling(rescale, name="rescale")(h)
    for i, units in enumerate(hidden_units, start=1):
        h = keras.layers.Dense(units, name=f"dense_{i}")(h)
        if batch_norm:
            h = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn_{i}")(h)
        h = keras.layers.Activation(activation, name=f"{activation}_{i}")(h)
    logits = keras.layers.Dense(n_classes, name="logits")(h)
    name = "mlp_bn" if batch_norm else "mlp_plain"
    return keras.Model(inputs, logits, name=name)


def build_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return OPTIMIZER_CLASSES[name](learning_rate=learning_rate)


def digit_model(model: keras.Model) -> keras.Model:
    """The trained network with argmax on top: raw pixel rows in, predicted class index out
    (for MNIST, the digit). Built from standard layers and ops only, so it loads in Keras's
    safe mode and serves through ``mlflow.pyfunc``."""
    digits = keras.ops.argmax(model.output, axis=-1)
    return keras.Model(model.input, digits, name=f"{model.name}_digits")
