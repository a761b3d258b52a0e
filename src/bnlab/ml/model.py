"""The network: per hidden layer Dense → (BatchNormalization) → (noise) → activation, or BN after
the activation; plus what the probes and the served model need from it."""

from __future__ import annotations

from collections.abc import Sequence

from bnlab.ml.fixed_order import FixedOrderDense
from bnlab.ml.hyperparams import BN_POSITIONS
from bnlab.ml.tf_runtime import keras

OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
}


def nonlinearity_name(layer: int) -> str:
    """The name of hidden layer ``layer``'s activation (from 1): the probes find it by name."""
    return f"nonlinearity_{layer}"


@keras.saving.register_keras_serializable(package="bnlab")
class RandomShiftScale(keras.layers.Layer):
    """Santurkar et al. (2018)'s "noisy BN": in training, every unit's output is scaled and
    shifted by amounts drawn anew at every step, so the distribution the next layer sees has a
    non-zero mean and a non-unit variance that change all the time: injected covariate shift.

    Per step and unit: shift ~ U(-shift, shift), scale = exp(U(-log s, log s)) for s = ``scale``
    (so scale and 1/scale are equally likely). At inference it is the identity, like dropout.
    """

    def __init__(self, shift: float = 1.0, scale: float = 2.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.shift, self.scale = float(shift), float(scale)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        units = (1, inputs.shape[-1])
        shift = keras.random.uniform(units, -self.shift, self.shift, seed=self.seed_generator)
        log_scale = keras.ops.log(self.scale)
        scale = keras.ops.exp(keras.random.uniform(units, -log_scale, log_scale, seed=self.seed_generator))
        return inputs * scale + shift

    def get_config(self):
        return {**super().get_config(), "shift": self.shift, "scale": self.scale}


def build_mlp(
    n_features: int,
    n_classes: int,
    hidden_units: Sequence[int] = (32, 32),
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.99,
    rescale: float | None = None,
    bn_position: str = "before",
    init_std: float | None = None,
    noise_shift: float = 0.0,
    noise_scale: float = 1.0,
) -> keras.Model:
    """An MLP that outputs logits. By default BN sits between each Dense layer and its
    activation, as in Ioffe & Szegedy (2015) and the reference notebook. ``init_std``: Dense
    weights from N(0, init_std²) instead of Keras's Glorot-uniform default. ``noise_shift`` > 0
    or ``noise_scale`` > 1 add :class:`RandomShiftScale` after each BN. The Dense layers are
    :class:`bnlab.ml.fixed_order.FixedOrderDense`: Keras's, with sums in a CPU-independent order."""
    if bn_position not in BN_POSITIONS:
        raise ValueError(f"bn_position must be one of {BN_POSITIONS}, got {bn_position!r}")
    init = "glorot_uniform" if init_std is None else keras.initializers.RandomNormal(stddev=init_std)
    noisy = batch_norm and (noise_shift > 0 or noise_scale > 1)
    inputs = keras.Input(shape=(n_features,), name="pixels")
    h = inputs
    if rescale is not None:
        # Part of the saved model, so a served model takes raw pixels as they come.
        h = keras.layers.Rescaling(rescale, name="rescale")(h)
    for i, units in enumerate(hidden_units, start=1):
        h = FixedOrderDense(units, kernel_initializer=init, name=f"dense_{i}")(h)

        def normalize(t, i=i):
            t = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn_{i}")(t)
            return RandomShiftScale(noise_shift, noise_scale, name=f"noise_{i}")(t) if noisy else t

        if batch_norm and bn_position == "before":
            h = normalize(h)
        h = keras.layers.Activation(activation, name=nonlinearity_name(i))(h)
        if batch_norm and bn_position == "after":
            h = normalize(h)
    logits = FixedOrderDense(n_classes, kernel_initializer=init, name="logits")(h)
    name = "mlp_bn" if batch_norm else "mlp_plain"
    return keras.Model(inputs, logits, name=name)


def build_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return OPTIMIZER_CLASSES[name](learning_rate=learning_rate)


def nonlinearity_model(model: keras.Model, n_hidden: int) -> keras.Model:
    """The same network, returning for each hidden layer the input to its nonlinearity (after
    BN and noise where they come first) and the nonlinearity's output, as one flat list
    [input 1, output 1, input 2, ...] (Keras would unnest a single layer's pair)."""
    layers = [model.get_layer(nonlinearity_name(i)) for i in range(1, n_hidden + 1)]
    return keras.Model(model.inputs, [t for layer in layers for t in (layer.input, layer.output)])


def has_batch_norm(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def inference_network(model: keras.Model) -> keras.Model:
    """The trained network as it predicts, built from Keras's own layers only: the noise
    layers (the identity at inference) are left out, so the saved file loads without bnlab."""
    if not any(isinstance(layer, RandomShiftScale) for layer in model.layers):
        return model

    def without_noise(layer):
        if isinstance(layer, RandomShiftScale):
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=without_noise)
    for layer in clone.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return clone
