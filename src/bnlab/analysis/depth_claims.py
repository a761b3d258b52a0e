"""The trainability map's rows of the verdict table (``yang2019_depth``): BN against the plain
network at every cell, each at its best rate (rows of "always use BN"), and a SkipInit residual
network against BN at the deepest networks (De & Smith 2020)."""

from bnlab.analysis.claim_measures import ACCURACY
from bnlab.analysis.verdicts import Claim

MAP = "yang2019_depth"
# The map's grid in params.yaml (tests/test_verdicts.py checks every claim's point against it).
MAP_DEPTHS, MAP_BATCH_SIZES = (10, 30, 50), (8, 128)
MAP_CELLS = tuple((depth, size) for depth in MAP_DEPTHS for size in MAP_BATCH_SIZES)
SETTINGS = "each at its best SGD rate, 300 steps, BN's statistics recomputed"


def deep_bn_key(depth: int, size: int) -> str:
    return f"deep_bn_{depth}_{size}"


def bn_accuracy_claims(source: str) -> tuple[Claim, ...]:
    """At every cell: with BN the test accuracy is higher (``source``'s claim)."""
    return tuple(
        Claim(
            deep_bn_key(depth, size),
            f"with BN the test accuracy is higher ({depth} hidden layers of 384, batch {size}, {SETTINGS})",
            source,
            MAP,
            ACCURACY,
            +1,
            point={"depth": depth, "batch_size": size},
        )
        for depth, size in MAP_CELLS
    )


def skipinit_claims(source: str) -> tuple[Claim, ...]:
    """At the deepest networks, each batch size: SkipInit trains where BN does not."""
    deepest = max(MAP_DEPTHS)
    return tuple(
        Claim(
            f"skipinit_depth_{size}",
            f"a SkipInit residual network trains at depths where BN's does not ({deepest} hidden layers, "
            f"batch {size}, {SETTINGS})",
            source,
            MAP,
            ACCURACY,
            +1,
            variant="skipinit",
            baseline="batchnorm",
            point={"depth": deepest, "batch_size": size},
        )
        for size in MAP_BATCH_SIZES
    )
