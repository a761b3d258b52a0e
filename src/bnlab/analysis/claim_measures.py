"""What each claim of :mod:`bnlab.analysis.claims` measures: the measures of
:mod:`bnlab.analysis.measures` with their labels and units, one instance per quantity the
verdict table compares."""

from bnlab.analysis.geometry_tables import SCALED_BETA
from bnlab.analysis.measures import (
    AccuracyAtStep,
    AngularUpdate,
    EffectiveRate,
    Fall,
    GradientGrowth,
    LandscapeMeasure,
    ModelMetric,
    ProbeMeasure,
    Sharpness,
    ShiftMeasure,
)

ACCURACY = ModelMetric("test accuracy", unit="%", difference_unit=" points", scale=100)
LOSS = ModelMetric("test loss", column="test_loss", digits=4)
# Pooled over a layer's units, in widths of its 15–85th percentile range (probe_tables.drift_per_run).
DRIFT = ProbeMeasure(
    "drift of the median input to the nonlinearities, mean over hidden layers",
    unit=" widths",
    difference_unit=" widths",
)
LAST_LAYER_DRIFT = ProbeMeasure(
    "drift of the median input to the last hidden layer's sigmoids",
    unit=" widths",
    difference_unit=" widths",
    last_layer=True,
)
DEAD = ProbeMeasure(
    "fraction of dead ReLUs at the end, mean over hidden layers",
    quantity="dead",
    unit="%",
    difference_unit=" points",
    scale=100,
    digits=1,
)
EARLY = AccuracyAtStep("test accuracy at step 1,000", unit="%", difference_unit=" points", scale=100, step=1000)
# Santurkar et al.'s quantities: one value per run, log10 averaged over its probes
# (bnlab.analysis.geometry_tables); a difference of -0.30 is a factor of 2 smaller.
LOG10 = {"difference_unit": " (log10)", "digits": 3}
SHIFT_NORM = ShiftMeasure("internal covariate shift ‖G − G′‖₂, log10, mean over probes and layers", **LOG10)
SHIFT_COSINE = ShiftMeasure("cos(G, G′), mean over probes and layers", quantity="ics_cosine", digits=3)
LOSS_VARIATION = LandscapeMeasure(
    "loss variation along the gradient, log10, mean over probes", quantity="loss_variation", **LOG10
)
PREDICTIVENESS = LandscapeMeasure(
    "largest gradient change along the gradient, log10, mean over probes", quantity="grad_predictiveness", **LOG10
)
SMOOTHNESS = LandscapeMeasure("effective β-smoothness along the gradient, log10, mean over probes", **LOG10)
UPDATE_SMOOTHNESS = LandscapeMeasure(
    "effective β-smoothness along Adam's update, log10, mean over probes", direction="update", **LOG10
)
# The same along the gradient's direction at one step length for every network and step
# (bnlab.ml.geometry's gradient_fixed_length), and β at the networks' equal weight scale.
FIXED_LENGTH = {"direction": "gradient_fixed_length", **LOG10}
FIXED_LOSS_VARIATION = LandscapeMeasure(
    "loss variation along the gradient at a fixed step length, log10, mean over probes",
    quantity="loss_variation",
    **FIXED_LENGTH,
)
FIXED_PREDICTIVENESS = LandscapeMeasure(
    "largest gradient change along the gradient at a fixed step length, log10, mean over probes",
    quantity="grad_predictiveness",
    **FIXED_LENGTH,
)
SCALED_SMOOTHNESS = LandscapeMeasure(
    "effective β-smoothness × ‖w‖² of the hidden kernels, along the gradient at a fixed step length, log10, "
    "mean over probes",
    quantity=SCALED_BETA,
    **FIXED_LENGTH,
)
# From batch 128 to batch 2 at the same number of samples seen (the small_batches grid).
SMALL_BATCH_FALL = Fall(
    "fall in test accuracy from batch 128 to batch 2", unit=" points", difference_unit=" points", scale=100
)
# The factor per layer by which ‖∂L/∂h‖² grows going down at initialization (1: it does not grow).
GRADIENT_GROWTH = GradientGrowth("growth of ‖∂L/∂h_l‖² per layer at initialization (fitted factor)", digits=3)
# The hidden kernels under SGD with momentum (bnlab.analysis.weight_norm_tables).
ANGULAR_UPDATE = AngularUpdate(
    "angular update of the hidden kernels per step at equilibrium (second half of training), log10", **LOG10
)
EFFECTIVE_RATE = EffectiveRate("effective learning rate η/‖w‖² at the end, log10, mean over hidden layers", **LOG10)
# λ_max of the training loss's Hessian late in training (bnlab.analysis.sharpness_tables).
SHARPNESS = Sharpness(
    "λ_max of the training loss's Hessian, late in training (median of the second half), log10", **LOG10
)
