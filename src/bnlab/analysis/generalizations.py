"""The generalizations the lab judges, each from the verdict table's rows that bear on it
(:mod:`bnlab.analysis.claims`): the second table of docs/results.md's verdicts."""

from bnlab.analysis.claims import IOFFE, NOTEBOOK, SANTURKAR, SMALL_BATCHES, YANG
from bnlab.analysis.depth_claims import MAP_CELLS, deep_bn_key
from bnlab.analysis.verdicts import Generalization

GENERALIZATIONS = (
    Generalization(
        "always use BN: it raises test accuracy in every setting",
        NOTEBOOK,
        # Every row with BN's test accuracy against the plain network's, contrary ones included
        # (tests/test_verdicts.py checks that none is left out).
        (
            "notebook",
            "notebook_best",
            "ioffe_higher",
            "ioffe_slow_higher",
            "ioffe_best_higher",
            "large_rate",
            "plain_best_rate",
            "small_batch_accuracy_2",
            "small_batch_accuracy_4",
            *(deep_bn_key(depth, size) for depth, size in MAP_CELLS),
        ),
        answers=True,
    ),
    Generalization(
        "BN makes training faster (Fig. 1a)", IOFFE, ("ioffe_faster", "ioffe_slow_faster", "ioffe_best_faster")
    ),
    Generalization(
        "BN makes the loss landscape smoother / gradients more predictive",
        SANTURKAR,
        # λ_max is the landscape's curvature too: the sharpness rows bear on it (either way).
        (
            "smooth_loss",
            "predictive",
            "beta_smooth",
            "beta_smooth_update",
            "smooth_loss_fixed_length",
            "predictive_fixed_length",
            "beta_smooth_scaled",
            "bn_sharpness_adam",
            "bn_sharpness_full_batch",
        ),
    ),
    Generalization(
        "BN needs large batches; LayerNorm and GroupNorm do not",
        SMALL_BATCHES,
        ("small_batch_bn", "small_batch_ln", "small_batch_gn"),
    ),
    Generalization(
        "BN networks' gradients explode with depth at initialization, as Yang et al. predict",
        YANG,
        ("yang_8", "yang_32", "yang_128"),
    ),
)
