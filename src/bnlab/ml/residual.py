"""SkipInit (De & Smith 2020, "Batch Normalization Biases Residual Blocks Towards the Identity
Function in Deep Networks"): a residual block ``x + α · f(x)`` whose branch is scaled by a
trainable scalar α that starts at 0, so that at initialization every block is the identity and
a network of any depth passes its signal and gradient unchanged, with no normalization.

This file travels with the served model (beside ``fixed_order.py``), so it imports nothing of
bnlab but ``tf_runtime``.
"""

from __future__ import annotations

if __package__:  # bnlab.ml.residual
    from bnlab.ml.tf_runtime import keras
else:  # residual.py beside the served model, where bnlab need not be installed
    from tf_runtime import keras


def gain_name(layer: int) -> str:
    """The name of hidden layer ``layer``'s branch gain (from 1)."""
    return f"skip_gain_{layer}"


@keras.saving.register_keras_serializable(package="bnlab")
class SkipGain(keras.layers.Layer):
    """``inputs · α``, α one trainable scalar initialized to 0 (SkipInit's gain)."""

    def build(self, input_shape):
        self.gain = self.add_weight(name="gain", shape=(), initializer="zeros")

    def call(self, inputs):
        return inputs * self.gain
