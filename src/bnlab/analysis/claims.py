"""The claims the lab puts to the test, each with the measurement that decides it: the rows of
the verdict table in docs/results.md. Adding a row is adding a Claim here (its measure from
:mod:`bnlab.analysis.claim_measures`)."""

from bnlab.analysis.claim_measures import (
    ACCURACY,
    DEAD,
    DRIFT,
    EARLY,
    FIXED_LOSS_VARIATION,
    FIXED_PREDICTIVENESS,
    GRADIENT_GROWTH,
    LAST_LAYER_DRIFT,
    LOSS,
    LOSS_VARIATION,
    PREDICTIVENESS,
    SCALED_SMOOTHNESS,
    SHIFT_COSINE,
    SHIFT_NORM,
    SMALL_BATCH_FALL,
    SMOOTHNESS,
    UPDATE_SMOOTHNESS,
)
from bnlab.analysis.depth_claims import bn_accuracy_claims
from bnlab.analysis.mechanism_claims import MECHANISM_CLAIMS
from bnlab.analysis.verdicts import Claim

NOTEBOOK = "the TF1 notebook"
IOFFE = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"
SMALL_BATCHES = "Ioffe 2017; Wu & He 2018"
YANG = "Yang et al. 2019"


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
    # Restated where step length and weight scale cannot stand in for smoothness: every network
    # steps the same distances, and β is read at equal ‖w‖ (bnlab.analysis.geometry_tables).
    Claim(
        "smooth_loss_fixed_length",
        "the loss varies less along the gradient also when every network steps the same distances",
        SANTURKAR,
        "santurkar",
        FIXED_LOSS_VARIATION,
        -1,
        figures=("landscape_gradient_fixed_length.png",),
    ),
    Claim(
        "predictive_fixed_length",
        "gradients change less along the gradient also when every network steps the same distances",
        SANTURKAR,
        "santurkar",
        FIXED_PREDICTIVENESS,
        -1,
    ),
    Claim(
        "beta_smooth_scaled",
        "BN lowers the effective β-smoothness also at equal weight scale (β·‖w‖², the same distances)",
        SANTURKAR,
        "santurkar",
        SCALED_SMOOTHNESS,
        -1,
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
            f"with BN the test accuracy is higher (batch {size}, each at its best Adam rate, 110,000 samples, "
            f"BN's statistics recomputed)",
            NOTEBOOK,
            "small_batches",
            ACCURACY,
            +1,
            point={"batch_size": size},
        )
        for size in (2, 4)
    ),
    *bn_accuracy_claims(NOTEBOOK),
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
    *MECHANISM_CLAIMS,
)
