"""Yang, Pennington, Rao, Sohl-Dickstein & Schoenholz (2019), "A Mean Field Theory of Batch
Normalization" (ICLR): at initialization, in a wide network of Dense → BN → ReLU layers (γ = 1,
β = 0), the squared norm of the loss's gradient with respect to the pre-activations (BN's input)
grows by a factor λ(B) per layer going down; the factor depends on the batch size B only and
falls to π/(π − 1) ≈ 1.467 as B grows (Theorem 8). A plain ReLU network with He initialization
keeps it at 1. With float32's 24-bit significand, a network stops training at about
16 / ln λ layers (e¹⁶ ≈ 2²³), the depth the paper draws on its trainability map.

:func:`bn_relu_gradient_rate` is λ(B) in closed form, derived in the paper's setting (infinite
width, gradient independence; BN with its batch variance, ε → 0):

- BN's output z of one unit over the batch is √B times a unit vector n, uniform on the sphere
  of the (B − 1)-dimensional space orthogonal to the all-ones vector (whatever the layer below:
  BN removes the mean and the scale of the unit's Gaussian pre-activation).
- The backward covariance of the pre-activation gradient stays proportional to the centring
  projection G = I − 11ᵀ/B, and one layer multiplies it by
  λ = B · E[tr(D G D (G − nnᵀ))] / (a (B − 1)(B − 3)), with D = diag(1[n > 0]) (ReLU's
  derivative), a = E[relu(z_i)²] − E[relu(z_i) relu(z_j)] (i ≠ j) and E[1/χ²_{B−1}] = 1/(B − 3).
- Each expectation is one of two coordinates of n, correlated ρ = −1/(B − 1): both positive with
  probability 1/4 + arcsin(ρ)/(2π), and E[relu(n_i) relu(n_j)] = (√(1 − ρ²) + (π − arccos ρ)ρ)/(2πB)
  (Cho & Saul's arc-cosine kernel).

Its large-batch limit is the paper's π/(π − 1); tests/test_init_gradients.py checks it against
a wide random network's gradients within the tolerance it states.
"""

from __future__ import annotations

import math

import numpy as np

# A plain ReLU network with He et al. (2015)'s initialization: Var(W) = 2 / fan-in keeps the
# squared gradient's size from layer to layer.
PLAIN_HE_RATE = 1.0
# ln(2²³) ≈ 16: the growth float32 cannot carry (Yang et al.'s trainable depth, 16 / ln λ).
FLOAT32_LOG_RANGE = 16.0
LARGE_BATCH_RATE = math.pi / (math.pi - 1)
SMALLEST_BATCH = 4  # E[1/χ²_{B−1}] is finite from B = 4 on


def bn_relu_gradient_rate(batch_size: int) -> float:
    """λ(B): the factor by which ‖∂L/∂h‖² grows per layer going down a wide BN ReLU network at
    initialization (see the module's docstring for the formula and its source)."""
    b = int(batch_size)
    if b < SMALLEST_BATCH:
        raise ValueError(f"λ(B) is finite from batch size {SMALLEST_BATCH} on, got {batch_size}")
    rho = -1.0 / (b - 1)  # the correlation of two coordinates of n
    both_positive = 0.25 + math.asin(rho) / (2 * math.pi)
    active, active_sq = b / 2, b / 2 + b * (b - 1) * both_positive  # E[k], E[k²]: k units active
    cross = (math.sqrt(1 - rho**2) + (math.pi - math.acos(rho)) * rho) / (2 * math.pi * b)
    sum_sq = 0.5 + b * (b - 1) * cross  # E[(Σ relu(n_i))²]; E[‖relu(n)‖²] = 1/2
    a = 0.5 - (sum_sq - 0.5) / (b - 1)  # relu(z)'s variance minus its covariance
    trace = active * (1 - 2 / b) + active_sq / b**2 - 0.5 + sum_sq / b
    return b * trace / (a * (b - 1) * (b - 3))


def trainable_depth(rate: float) -> float:
    """Yang et al.'s depth limit 16 / ln λ (infinite where gradients do not grow)."""
    return math.inf if rate <= 1 else FLOAT32_LOG_RANGE / math.log(rate)


def measured_rate(layers: np.ndarray, grad_sq_norm: np.ndarray) -> float:
    """λ̂ = exp(−slope) of the least-squares line through ln ‖∂L/∂h_l‖² against l: the factor per
    layer going down."""
    slope = np.polyfit(np.asarray(layers, dtype=float), np.log(np.asarray(grad_sq_norm, dtype=float)), 1)[0]
    return float(np.exp(-slope))
