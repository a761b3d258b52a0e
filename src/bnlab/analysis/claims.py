"""The claims the lab puts to the test, each with the measurement that decides it: the rows of
the verdict table in docs/results.md. Adding a row is adding a Claim here."""

from bnlab.analysis.measures import (
    AccuracyAtStep,
    Fall,
    GradientGrowth,
    LandscapeMeasure,
    ModelMetric,
    ProbeMeasure,
    ShiftMeasure,
)
from bnlab.analysis.verdicts import Claim

NOTEBOOK = "the TF1 notebook"
IOFFE = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"
SMALL_BATCHES = "Ioffe 2017; Wu & He 2018"
YANG = "Yang et al. 2019"

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
# From batch 128 to batch 2 at the same number of samples seen (the small_batches grid).
SMALL_BATCH_FALL = Fall(
    "fall in test accuracy from batch 128 to batch 2", unit=" points", difference_unit=" points", scale=100
)
# The factor per layer by which ‖∂L/∂h‖² grows going down at initialization (1: it does not grow).
GRADIENT_GROWTH = GradientGrowth("growth of ‖∂L/∂h_l‖² per layer at initialization (fitted factor)", digits=3)

CLAIMS = (
    Claim(
        "shift",
        "BN reduces covariate shift: the inputs to the nonlinearities stop drifting",
        NOTEBOOK,
        "notebook",
        DRIFT,
        -1,
        figures=("input_median_by_layer.png",),
    ),
    Claim(
        "dead",
        "without BN, inputs shifted below zero switch ReLUs off",
        NOTEBOOK,
        "notebook",
        DEAD,
        -1,
        figures=("dead_units.png",),
    ),
    Claim(
        "notebook",
        "with BN the test accuracy is higher",
        NOTEBOOK,
        "notebook",
        ACCURACY,
        +1,
        figures=("val_accuracy.png",),
    ),
    Claim("notebook_loss", "with BN the test loss is lower", NOTEBOOK, "notebook", LOSS, -1),
    Claim(
        "ioffe_faster",
        "BN reaches high test accuracy faster (Fig. 1a), at the rate best for the plain network",
        IOFFE,
        "ioffe2015",
        EARLY,
        +1,
        figures=("test_accuracy_by_step.png",),
    ),
    Claim(
        "ioffe_higher",
        "BN reaches a higher test accuracy (Fig. 1a), at the rate best for the plain network",
        IOFFE,
        "ioffe2015",
        ACCURACY,
        +1,
    ),
    Claim(
        "ioffe_slow_faster",
        "BN reaches high test accuracy faster (Fig. 1a), at SGD 0.1",
        IOFFE,
        "ioffe2015_slow",
        EARLY,
        +1,
        figures=("test_accuracy_by_step.png",),
    ),
    Claim(
        "ioffe_slow_higher",
        "BN reaches a higher test accuracy (Fig. 1a), at SGD 0.1",
        IOFFE,
        "ioffe2015_slow",
        ACCURACY,
        +1,
    ),
    Claim(
        "ioffe_best_faster",
        "BN reaches high test accuracy faster (Fig. 1a), each network at its own best SGD rate (chosen on validation)",
        IOFFE,
        "ioffe2015_tuned",
        EARLY,
        +1,
        figures=("test_accuracy_by_step.png",),
    ),
    Claim(
        "ioffe_best_higher",
        "BN reaches a higher test accuracy (Fig. 1a), each network at its own best SGD rate",
        IOFFE,
        "ioffe2015_tuned",
        ACCURACY,
        +1,
    ),
    Claim(
        "ioffe_stable",
        "with BN a sigmoid's input distribution is stable, without it it keeps changing "
        "(Fig. 1b, c), at the rate best for the plain network",
        IOFFE,
        "ioffe2015",
        LAST_LAYER_DRIFT,
        -1,
        figures=("percentiles_layer3_unit0.png",),
    ),
    Claim(
        "ioffe_slow_stable",
        "the same, at SGD 0.1",
        IOFFE,
        "ioffe2015_slow",
        LAST_LAYER_DRIFT,
        -1,
        figures=("percentiles_layer3_unit0.png",),
    ),
    Claim(
        "noisy",
        "BN's gain survives injected covariate shift (noisy BN vs plain)",
        SANTURKAR,
        "noisy_bn",
        ACCURACY,
        +1,
        variant="noisy_bn",
        figures=("test_accuracy_by_step.png",),
    ),
    Claim(
        "notebook_best",
        "with BN the test accuracy is higher, each network at its own best Adam rate (chosen on validation)",
        NOTEBOOK,
        "notebook_tuned",
        ACCURACY,
        +1,
    ),
    Claim(
        "large_rate",
        "BN trains at learning rates where the plain network breaks (Adam 0.1)",
        SANTURKAR,
        "lr_sweep",
        ACCURACY,
        +1,
        point={"learning_rate": 0.1},
        figures=("test_accuracy_vs_learning_rate.png",),
    ),
    Claim(
        "plain_best_rate",
        "BN helps at the learning rate best for the plain network (Adam 0.001)",
        NOTEBOOK,
        "lr_sweep",
        ACCURACY,
        +1,
        point={"learning_rate": 0.001},
    ),
    Claim(
        "ics",
        "BN reduces internal covariate shift (Santurkar et al.'s definition: the gradient change "
        "a layer sees when the layers below it take their step)",
        IOFFE,
        "santurkar",
        SHIFT_NORM,
        -1,
        figures=("covariate_shift.png",),
    ),
    Claim(
        "ics_cosine",
        "BN's internal covariate shift is similar, or even worse (Fig. 3): with BN the two "
        "gradients are no better aligned (cosine; scale-free, unlike the norm)",
        SANTURKAR,
        "santurkar",
        SHIFT_COSINE,
        -1,
    ),
    Claim(
        "smooth_loss",
        "BN makes the loss landscape smoother: the loss varies less along the gradient",
        SANTURKAR,
        "santurkar",
        LOSS_VARIATION,
        -1,
        figures=("landscape_gradient.png",),
    ),
    Claim(
        "predictive",
        "BN makes gradients more predictive: they change less along the gradient",
        SANTURKAR,
        "santurkar",
        PREDICTIVENESS,
        -1,
    ),
    Claim(
        "beta_smooth", "BN lowers the effective β-smoothness along the gradient", SANTURKAR, "santurkar", SMOOTHNESS, -1
    ),
    Claim(
        "beta_smooth_update",
        "the same along the optimizer's actual step (Adam here, SGD in the paper)",
        SANTURKAR,
        "santurkar",
        UPDATE_SMOOTHNESS,
        -1,
        figures=("landscape_update.png",),
    ),
    Claim(
        "small_batch_bn",
        "BN needs large batches: from batch 128 to 2 its accuracy falls more than the plain network's",
        SMALL_BATCHES,
        "small_batches",
        SMALL_BATCH_FALL,
        +1,
        figures=("test_accuracy_vs_batch_size.png", "train_vs_inference_mode_vs_batch_size.png"),
    ),
    *(
        Claim(
            f"small_batch_accuracy_{size}",
            f"with BN the test accuracy is higher (batch {size}, Adam 0.001, 110,000 samples, "
            f"BN's statistics recomputed)",
            NOTEBOOK,
            "small_batches",
            ACCURACY,
            +1,
            point={"batch_size": size},
        )
        for size in (2, 4)
    ),
    Claim(
        "small_batch_ln",
        "LayerNorm does not: its accuracy falls less than BN's",
        "Ba et al. 2016",
        "small_batches",
        SMALL_BATCH_FALL,
        +1,
        baseline="layernorm",
    ),
    Claim(
        "small_batch_gn",
        "GroupNorm does not: its accuracy falls less than BN's",
        "Wu & He 2018",
        "small_batches",
        SMALL_BATCH_FALL,
        +1,
        baseline="groupnorm",
    ),
    Claim(
        "small_batch_renorm",
        "batch renormalization's accuracy falls less than BN's",
        "Ioffe 2017",
        "small_batches",
        SMALL_BATCH_FALL,
        +1,
        baseline="batch_renorm",
    ),
    *(
        Claim(
            f"yang_{size}",
            f"at initialization a BN network's gradients grow with depth, a plain He-initialized "
            f"network's do not (batch {size})",
            YANG,
            "yang2019",
            GRADIENT_GROWTH,
            +1,
            point={"batch_size": size},
            figures=("init_gradients.png",) if size == 32 else (),
        )
        for size in (8, 32, 128)
    ),
)
