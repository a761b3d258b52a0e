"""What happens to the loss's gradient between the backward pass and the optimizer: adaptive
gradient clipping, then L2 weight decay.

- Clipping (``clip_factor``; :mod:`bnlab.ml.gradient_clipping`): every trainable variable but the
  output layer's, which Brock et al. (2021) leave unclipped.
- Weight decay (``weight_decay`` λ): the L2 form, the gradient of (λ/2)·‖W‖² added to each Dense
  kernel's gradient, λ·W, after clipping (so the decay itself is never clipped away). Not on
  biases, nor on the normalizations' γ and β, nor on SkipInit's gains. Under SGD with momentum
  μ this is the form for which Wan et al. (2021) derive the equilibrium angular update
  √(2ηλ/(1 + μ)) of a scale-invariant kernel. It is not AdamW's decoupled decay: with Adam the
  λ·W term is divided by Adam's running scale like the rest of the gradient.

With neither set the gradient goes to the optimizer untouched: the compiled step is the one
it was before these settings existed, op for op.
"""

from __future__ import annotations

from dataclasses import dataclass

from bnlab.ml.gradient_clipping import clipped
from bnlab.ml.model import OUTPUT_LAYER


def is_kernel(variable) -> bool:
    """A Dense layer's weight matrix (Keras names it ``<layer>/kernel``)."""
    return variable.path.endswith("/kernel")


def is_output_layer(variable) -> bool:
    return variable.path.startswith(f"{OUTPUT_LAYER}/")


@dataclass(frozen=True)
class GradientRule:
    """``clip_factor``: AGC's λ, or None for no clipping; ``weight_decay``: L2's λ."""

    clip_factor: float | None = None
    weight_decay: float = 0.0

    @classmethod
    def of(cls, gradient_clipping: str, clip_factor: float, weight_decay: float) -> GradientRule:
        """The rule of the estimator's settings of these names."""
        return cls(clip_factor if gradient_clipping == "adaptive" else None, float(weight_decay))

    def apply(self, gradients: list, variables: list) -> list:
        """The gradients the optimizer gets (the graph ops of this rule only)."""
        if self.clip_factor is not None:
            gradients = clipped(gradients, variables, self.clip_factor, [not is_output_layer(v) for v in variables])
        if self.weight_decay:
            gradients = [
                g + self.weight_decay * v if is_kernel(v) else g for g, v in zip(gradients, variables, strict=True)
            ]
        return gradients
