"""The claims about what else explains BN's benefit and what replaces it: scale invariance and
the effective learning rate, sharpness, adaptive gradient clipping, SkipInit residual networks.
Rows of the verdict table, as :mod:`bnlab.analysis.claims`'s."""

from bnlab.analysis.claim_measures import ACCURACY, ANGULAR_UPDATE, EFFECTIVE_RATE, SHARPNESS
from bnlab.analysis.depth_claims import skipinit_claims
from bnlab.analysis.verdicts import Claim

SCALE_INVARIANCE = "van Laarhoven 2017; Wan et al. 2021"
EFFECTIVE_RATE_SOURCE = "Hoffer et al. 2018; Li & Arora 2020"
AGC = "Brock et al. 2021"
SKIPINIT = "De & Smith 2020"
SHARPNESS_SOURCE = "Ghorbani et al. 2019; Santurkar et al. 2018"

MECHANISM_CLAIMS = (
    Claim(
        "decay_angular_update",
        "with weight decay a scale-invariant kernel's angular update settles; without it ‖w‖ "
        "grows and the update keeps shrinking (SGD 0.1, momentum 0.9, λ = 5e-4)",
        SCALE_INVARIANCE,
        "effective_lr",
        ANGULAR_UPDATE,
        +1,
        variant="decay",
        baseline="no_decay",
        figures=("weight_norms.png",),
    ),
    Claim(
        "decay_effective_rate",
        "weight decay on a BN network keeps its effective learning rate η/‖w‖² up: it acts as a "
        "learning-rate schedule, not as a regularizer of the function",
        EFFECTIVE_RATE_SOURCE,
        "effective_lr",
        EFFECTIVE_RATE,
        +1,
        variant="decay",
        baseline="no_decay",
    ),
    Claim(
        "bn_sharpness_full_batch",
        "BN lowers the sharpness λ_max of the training loss at a given rate, under full-batch gradient "
        "descent (η = 0.4, 2,000 training images, 100 steps)",
        SHARPNESS_SOURCE,
        "edge_of_stability",
        SHARPNESS,
        -1,
        point={"learning_rate": 0.4},
        figures=("sharpness.png",),
    ),
    Claim(
        "bn_sharpness_adam",
        "BN lowers the sharpness λ_max of the training loss along training, read beside β-smoothness "
        "(the notebook's Adam 0.01, mini-batches of 32)",
        SHARPNESS_SOURCE,
        "santurkar",
        SHARPNESS,
        -1,
        figures=("sharpness.png",),
    ),
    Claim(
        "agc_large_rate",
        "adaptive gradient clipping raises a plain network's test accuracy at a rate where it otherwise "
        "breaks (Adam 0.1; Brock et al. clip SGD's steps, here Adam's gradients)",
        AGC,
        "lr_sweep",
        ACCURACY,
        +1,
        variant="plain_agc",
        point={"learning_rate": 0.1},
        figures=("test_accuracy_vs_learning_rate.png",),
    ),
    *skipinit_claims(SKIPINIT),
)
