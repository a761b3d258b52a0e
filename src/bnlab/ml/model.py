"""The network: per hidden layer Dense → (BatchNormalization) → (noise) → activation, or BN after
the activation; plus what the probes and the served model need from it."""

from __future__ import annotations

from collections.abc import Sequence

from bnlab.ml.fixed_order import FixedOrderDense
from bnlab.ml.hyperparams import BN_POSITIONS, INITIALIZERS, NORMALIZATIONS, RESIDUALS
from bnlab.ml.residual import SkipGain, gain_name
from bnlab.ml.tf_runtime import keras

OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
}


OUTPUT_LAYER = "logits"


def nonlinearity_name(layer: int) -> str:
    """The name of hidden layer ``layer``'s activation (from 1): the probes find it by name."""
    return f"nonlinearity_{layer}"


def dense_name(layer: int) -> str:
    return f"dense_{layer}"


# Layer names by kind of normalization: BN's stay "bn_<i>" with or without renormalization.
_NORMALIZATION_PREFIXES = {"batch": "bn", "batch_renorm": "bn", "layer": "ln", "group": "gn"}
# Ioffe (2017)'s final clipping of the renormalization's correction (he ramps up to it; no ramp here).
RENORM_CLIPPING = {"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0}


def normalization_name(layer: int, kind: str = "batch") -> str:
    return f"{_NORMALIZATION_PREFIXES[kind]}_{layer}"


def normalization_layer(kind: str, layer: int, momentum: float, groups: int) -> keras.layers.Layer:
    """The normalization of hidden layer ``layer`` (Keras's layers, Keras's ε of 0.001 each)."""
    name = normalization_name(layer, kind)
    if kind == "batch":
        return keras.layers.BatchNormalization(momentum=momentum, name=name)
    if kind == "batch_renorm":
        return keras.layers.BatchNormalization(
            momentum=momentum, renorm=True, renorm_clipping=RENORM_CLIPPING, renorm_momentum=momentum, name=name
        )
    if kind == "layer":
        return keras.layers.LayerNormalization(name=name)
    return keras.layers.GroupNormalization(groups=groups, name=name)


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
    normalization: str = "batch",
    norm_groups: int = 8,
    initializer: str = "glorot_uniform",
    residual: str = "none",
) -> keras.Model:
    """An MLP that outputs logits. By default BN sits between each Dense layer and its
    activation, as in Ioffe & Szegedy (2015) and the reference notebook. Dense weights are drawn
    by Keras's ``initializer`` (:data:`bnlab.ml.hyperparams.INITIALIZERS`), or from N(0, init_std²)
    where ``init_std`` is set. ``noise_shift`` > 0 or ``noise_scale`` > 1 add
    :class:`RandomShiftScale` after each BN. ``normalization``: what sits where BN does
    (:data:`bnlab.ml.hyperparams.NORMALIZATIONS`); GroupNorm splits each layer's units into
    ``norm_groups`` groups. With ``residual="skipinit"`` every hidden layer after the first is a
    residual block, its input plus its output (Dense, normalization, activation) times a gain
    that starts at 0 (:mod:`bnlab.ml.residual`); the first maps the pixels to the blocks' width,
    as a ResNet's stem does. The Dense layers are
    :class:`bnlab.ml.fixed_order.FixedOrderDense`: Keras's, with sums in a CPU-independent order."""
    if bn_position not in BN_POSITIONS:
        raise ValueError(f"bn_position must be one of {BN_POSITIONS}, got {bn_position!r}")
    if initializer not in INITIALIZERS:
        raise ValueError(f"initializer must be one of {INITIALIZERS}, got {initializer!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
    if residual != "none" and len(set(hidden_units)) > 1:
        raise ValueError(f"a residual block keeps its width: hidden_units {tuple(hidden_units)} must be one width")
    if batch_norm and normalization == "group" and any(u % norm_groups or u == norm_groups for u in hidden_units):
        # A group of one unit normalizes to a constant: the layer passes no signal.
        raise ValueError(
            f"norm_groups={norm_groups} must divide every hidden layer's units "
            f"{tuple(hidden_units)} into groups of at least 2"
        )
    init = initializer if init_std is None else keras.initializers.RandomNormal(stddev=init_std)
    noisy = batch_norm and (noise_shift > 0 or noise_scale > 1)
    inputs = keras.Input(shape=(n_features,), name="pixels")
    h = inputs
    if rescale is not None:
        # Part of the saved model, so a served model takes raw pixels as they come.
        h = keras.layers.Rescaling(rescale, name="rescale")(h)
    for i, units in enumerate(hidden_units, start=1):
        block_input = h
        h = FixedOrderDense(units, kernel_initializer=init, name=dense_name(i))(h)

        def normalize(t, i=i):
            t = normalization_layer(normalization, i, bn_momentum, norm_groups)(t)
            return RandomShiftScale(noise_shift, noise_scale, name=f"noise_{i}")(t) if noisy else t

        if batch_norm and bn_position == "before":
            h = normalize(h)
        h = keras.layers.Activation(activation, name=nonlinearity_name(i))(h)
        if batch_norm and bn_position == "after":
            h = normalize(h)
        if residual == "skipinit" and i > 1:
            h = keras.layers.Add(name=f"residual_{i}")([block_input, SkipGain(name=gain_name(i))(h)])
    logits = FixedOrderDense(n_classes, kernel_initializer=init, name=OUTPUT_LAYER)(h)
    name = ("mlp_bn" if normalization == "batch" else f"mlp_{normalization}") if batch_norm else "mlp_plain"
    return keras.Model(inputs, logits, name=name if residual == "none" else f"{name}_{residual}")


def build_optimizer(name: str, learning_rate: float, momentum: float = 0.0) -> keras.optimizers.Optimizer:
    """Keras's optimizer ``name``; ``momentum`` is SGD's heavy ball (Keras's: v ← μv − ηg, w ← w + v)."""
    if momentum and name != "sgd":
        raise ValueError(f"momentum is SGD's; optimizer {name!r} has none of it")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    return OPTIMIZER_CLASSES[name](learning_rate=learning_rate)


def nonlinearity_model(model: keras.Model, n_hidden: int) -> keras.Model:
    """The same network, returning for each hidden layer the input to its nonlinearity (after
    BN and noise where they come first) and the nonlinearity's output, as one flat list
    [input 1, output 1, input 2, ...] (Keras would unnest a single layer's pair)."""
    layers = [model.get_layer(nonlinearity_name(i)) for i in range(1, n_hidden + 1)]
    return keras.Model(model.inputs, [t for layer in layers for t in (layer.input, layer.output)])


def block_layer_names(model: keras.Model, layer: int) -> list[str]:
    """The layers with weights of block ``layer`` (from 1): hidden layer i's Dense layer and its
    normalization, if any; past the last hidden layer, the output layer."""
    names = {existing.name for existing in model.layers}
    if dense_name(layer) not in names:
        return [OUTPUT_LAYER]
    return [
        name
        for name in (dense_name(layer), *{normalization_name(layer, kind) for kind in NORMALIZATIONS})
        if name in names
    ]


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
