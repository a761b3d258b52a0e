"""Adaptive gradient clipping (AGC; Brock, De, Smith & Simonyan 2021, "High-Performance
Large-Scale Image Recognition Without Normalization", section 4.1): each unit's gradient is
scaled down where it is large beside the unit's weights,

    G_i ← λ · max(‖W_i‖, ε) / ‖G_i‖ · G_i   where ‖G_i‖ / max(‖W_i‖, ε) > λ,

with ‖·‖ the Frobenius norm of unit i's part: for a Dense kernel of shape (inputs, units), a
column (the weights into one unit); for a vector (a bias, BN's γ or β), the whole vector, as
the authors' code does (``unitwise_norm`` in deepmind-research/nfnets). λ is ``clip_factor``;
ε = 1e-3 keeps zero-initialized weights from freezing. The authors leave the final classifier
layer unclipped; :func:`clipped` takes which variables to clip.

The norms are reductions inside the compiled step, in float32, as the step's other sums are.
"""

from __future__ import annotations

from collections.abc import Sequence

from bnlab.ml.tf_runtime import tf

EPSILON = 1e-3  # Brock et al.'s ε
SMALLEST_GRADIENT_NORM = 1e-6  # their floor under ‖G_i‖ in the scale (no division by zero)


def unitwise_norm(x):
    """‖x_i‖ per unit: over a kernel's inputs (one value per column, kept as a row), or over a
    whole vector."""
    if len(x.shape) <= 1:
        return tf.sqrt(tf.reduce_sum(tf.square(x)))
    return tf.sqrt(tf.reduce_sum(tf.square(x), axis=0, keepdims=True))


def adaptive_clip(gradient, weight, clip_factor: float):
    """``gradient`` clipped unit by unit against ``weight`` (module docstring)."""
    largest = tf.maximum(unitwise_norm(weight), EPSILON) * clip_factor
    norm = unitwise_norm(gradient)
    scaled = gradient * (largest / tf.maximum(norm, SMALLEST_GRADIENT_NORM))
    return tf.where(norm > largest, scaled, gradient)


def clipped(gradients: Sequence, weights: Sequence, clip_factor: float, clip: Sequence[bool]) -> list:
    """Each gradient clipped against its weight where ``clip`` says so, else as it was."""
    return [
        adaptive_clip(g, w, clip_factor) if wanted else g for g, w, wanted in zip(gradients, weights, clip, strict=True)
    ]
