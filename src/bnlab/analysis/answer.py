"""The page's first tables: when BN helps (the rows of the generalization that answers "should
I use BN?", each at the settings its networks were compared at, with the BN-free alternatives
measured there) and the headline (every comparison of the experiments without a grid, once)."""

from __future__ import annotations

import math

from bnlab.analysis.markdown import markdown_table
from bnlab.analysis.measures import point_text
from bnlab.analysis.published import ExperimentResults
from bnlab.analysis.statistics import (
    ALPHA,
    TEST,
    Paired,
    accuracy_spread,
    format_p,
    gain_with_interval,
    holm,
    paired,
    two_decimals,
)
from bnlab.analysis.verdicts import Claim, Generalization, Verdict, effect_word, generalization_word
from bnlab.experiments.jobs import format_value, point_label
from bnlab.experiments.params import COMPARISON_KEY, SELECTED_KEY

SETTINGS_NOTE = (
    "A comparison that names its settings (*at learning_rate=…*) has each network at its own best, "
    "chosen on the validation split with seeds of their own "
    "([experiments.md](experiments.md#each-variant-at-its-best-tune)); those rows come first. The "
    "others compare both networks at one shared setting, which measures how well each tolerates it "
    "as much as what BN does."
)
ANSWER_NOTE = (
    "Each row is a verdict row below (its claim: BN's test accuracy is higher): the test "
    "accuracy of BN's network minus the plain network's, the mean over paired seeds, with the "
    f"interval at the row's Holm level. *helps* or *hurts*: Holm-adjusted p < {ALPHA}, by the sign "
    "of the difference; *no effect shown*: not. A setting shared by both networks is given once; "
    "*each at its best*: each network at the setting its own selection chose on the validation "
    "split. The generalization's word follows the rules under the verdict table."
)
# An alternative whose whole interval of (its test accuracy − BN's) lies within ± this matches BN.
MATCH_MARGIN = 0.01
MATCHES, BEATS, FALLS_SHORT, UNDECIDED = "matches BN", "beats BN", "falls short of BN", "undecided"
CLOSE_BELOW, CLOSE_ABOVE = "within 1 point of BN, below it", "within 1 point of BN, above it"
ALTERNATIVES_NOTE = (
    "*BN-free alternatives*: every network of the row's experiment without BN but the plain one "
    "(plain + adaptive gradient clipping, SkipInit), at the row's settings: its test accuracy "
    f"minus BN's, paired by seed, with the {1 - ALPHA:.0%} t-interval (not Holm-adjusted). "
    f"**{MATCHES}**: the whole interval within ±{100 * MATCH_MARGIN:g} point and including 0; "
    f"**{CLOSE_BELOW}** / **{CLOSE_ABOVE}**: within ±{100 * MATCH_MARGIN:g} point but excluding 0; "
    f"**{BEATS}** / **{FALLS_SHORT}**: otherwise above / below 0; **{UNDECIDED}**: none of these. "
    "—: none measured there."
)
HEADLINE_HOLM = (
    "In this table *p Holm* is Holm over its own rows (in each experiment's report, over that "
    "experiment's comparisons); a comparison whose runs several experiments share is one row, "
    "naming them all."
)


def where(claim: Claim) -> str:
    return f"`{claim.experiment}`" + (f" at {point_text(claim.point)}" if claim.point else "")


def chosen_settings(results: ExperimentResults, variant: str) -> str:
    """`` at learning_rate=0.003``: what a selection chose for ``variant``; empty without one."""
    chosen = results.metrics.get(SELECTED_KEY, {}).get(variant)
    return f" at {point_label(tuple(chosen.items()))}" if chosen else ""


def answer_markdown(
    results: dict[str, ExperimentResults], verdicts: list[Verdict], generalizations: tuple[Generalization, ...]
) -> str:
    """The page's answer: every row of the generalization that answers "should I use BN?",
    with the settings each network was compared at (its report's settings.csv), what BN does
    there, and the generalization's word judged from those rows."""
    rows, words = [], []
    for g in (g for g in generalizations if g.answers):
        spanned = [v for v in verdicts if v.claim.key in g.spans]
        rows += [answer_row(results[v.claim.experiment], v) for v in spanned]
        if len(spanned) == len(g.spans):
            words.append(f"**{g.claim}** ({g.source}): **{generalization_word([v.word for v in spanned])}**")
    header = [
        "setting",
        "optimizer and rate",
        "batch size",
        "hidden layers",
        "BN's statistics",
        "each at its best",
        "BN − plain [interval]",
        "BN here",
        "BN-free alternatives − BN [95% CI]",
    ]
    return "\n\n".join([markdown_table(header, rows), ANSWER_NOTE, ALTERNATIVES_NOTE, *words])


def answer_row(r: ExperimentResults, v: Verdict) -> list:
    """One row of the answer table: where, the settings of both networks, BN's effect."""
    c, m = v.claim, v.claim.measure

    def setting(name: str) -> str:
        values = [r.setting(variant, name, c.point) for variant in (c.variant, c.baseline)]
        text = [format_value(value) for value in values]
        return text[0] if text[0] == text[1] else f"{c.variant} {text[0]}, {c.baseline} {text[1]}"

    return [
        where(c),
        f"{setting('optimizer')} {setting('learning_rate')}",
        setting("batch_size"),
        layers_text(setting("hidden_units")),
        format_value(r.setting(c.variant, "bn_statistics", c.point)),
        "yes" if SELECTED_KEY in r.metrics else "no: one shared setting",
        m.difference(v.test.mean, v.interval),
        f"**{effect_word(v)}**",
        alternatives(r, c),
    ]


def layers_text(hidden_units: str) -> str:
    """settings.csv's ``384-384-...`` as ``50 × 384`` where more than 4 layers share one width."""
    widths = hidden_units.split("-")
    return f"{len(widths)} × {widths[0]}" if len(widths) > 4 and len(set(widths)) == 1 else hidden_units


def alternatives(r: ExperimentResults, c: Claim) -> str:
    """Each BN-free alternative measured beside a row's networks (a variant of its experiment
    without BN that is neither of them) against BN there, with the word :func:`against_bn` gives."""
    rows = r.at_point(c.point)

    def accuracy(variant: str):
        return rows[rows["variant"] == variant].set_index("seed")[c.measure.column]

    found = []
    for variant in r.variants:
        if variant in (c.variant, c.baseline) or r.setting(variant, "batch_norm", c.point):
            continue
        test = paired((accuracy(variant) - accuracy(c.variant)).to_numpy())
        found.append(
            f"{variant} {c.measure.difference(test.mean, (test.ci_low, test.ci_high))}: **{against_bn(test)}**"
        )
    return "; ".join(found) or "—"


def against_bn(test: Paired) -> str:
    """An alternative's word against BN, from the interval of its difference (ALTERNATIVES_NOTE)."""
    if -MATCH_MARGIN <= test.ci_low and test.ci_high <= MATCH_MARGIN:
        return CLOSE_ABOVE if test.ci_low > 0 else CLOSE_BELOW if test.ci_high < 0 else MATCHES
    if test.ci_low > 0:
        return BEATS
    return FALLS_SHORT if test.ci_high < 0 else UNDECIDED


def headline_comparisons(results: dict[str, ExperimentResults]) -> list[tuple[list[str], ExperimentResults, str]]:
    """Each comparison of each experiment without a grid, once: the experiments whose runs
    give it (the same per-seed results of both networks) are named together, and the first
    one's report gives its numbers. Each network at its best (a selection's) first."""
    found: dict[tuple, tuple[list[str], ExperimentResults, str]] = {}
    for name, r in sorted(results.items(), key=lambda item: SELECTED_KEY not in item[1].metrics):
        if r.grid_keys:
            continue
        for variant in r.metrics[COMPARISON_KEY]:
            runs = (r.outcomes(variant), r.outcomes(r.baseline))
            found.setdefault(runs, ([], r, variant))[0].append(name)
    return list(found.values())


def headline_markdown(results: dict[str, ExperimentResults]) -> str:
    """One row per distinct comparison (:func:`headline_comparisons`), Holm over the rows."""
    header = [
        "experiment",
        "comparison",
        "test accuracy (mean ± std)",
        "gain [95% CI] (points)",
        "d_z",
        "p",
        "p exact",
        "p Holm",
        "seeds",
        "detectable (points)",
    ]
    comparisons = headline_comparisons(results)
    comps = [r.metrics[COMPARISON_KEY][variant] for _, r, variant in comparisons]
    p_holm = holm([math.nan if c["p_value"] is None else c["p_value"] for c in comps])
    rows = []
    for (names, r, variant), comp, adjusted in zip(comparisons, comps, p_holm):
        accuracy = f"{accuracy_spread(r.metrics[variant])} vs {accuracy_spread(r.metrics[r.baseline])}"
        also = f" (the same runs: {', '.join(f'`{n}`' for n in names[1:])})" if names[1:] else ""
        rows.append(
            [
                f"`{names[0]}`{also}",
                f"{variant}{chosen_settings(r, variant)} vs {r.baseline}{chosen_settings(r, r.baseline)}",
                accuracy,
                gain_with_interval(comp),
                two_decimals(comp["effect_size_dz"]),
                format_p(comp["p_value"]),
                format_p(comp["p_exact"]),
                format_p(adjusted),
                comp["seeds"],
                two_decimals(comp["detectable_gain"], 100),
            ]
        )
    return markdown_table(header, rows) + f"\n\n{SETTINGS_NOTE} {TEST}. {HEADLINE_HOLM}"
