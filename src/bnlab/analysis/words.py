"""The words a verdict is given (:mod:`bnlab.analysis.verdicts`'s rules; the depth limits'
rule in :mod:`bnlab.analysis.stopping_depth`), in one place for every table that prints them."""

AGREES, DISAGREES, NO_EFFECT, PARTLY, TOO_FEW = "agrees", "disagrees", "no effect shown", "partly", "too few seeds"
HELPS, HURTS = "helps", "hurts"  # the answer table's words: the sign of a significant difference
T_TEST_ONLY = " (t-test only)"  # added when the exact sign-flip test does not also reach p < α
