"""Numbers for the verdict from landscape.csv and ics.csv (Santurkar et al. 2018, measured by
:mod:`bnlab.ml.geometry`): each probe's landscape summary, one number per run, and the tables
and figures' data, each with the mean and std over seeds.

One number per run: the quantities span orders of magnitude over training (the first steps'
gradients are the largest), so a run's landscape summaries and covariate-shift norms are
averaged over its probes in log10 (a geometric mean: every probe counts alike, early or late);
cosines are averaged as they are. Layers are averaged alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.analysis.markdown import markdown_table
from bnlab.analysis.probe_tables import mean_std, over_seeds
from bnlab.ml.probe_rows import LANDSCAPE_SUMMARY, landscape_summary

RUN = ["variant", "seed"]
# The figure-4 quantities, with what each says.
LANDSCAPE_LABELS = {
    "loss_variation": "loss variation (max − min over η)",
    "grad_predictiveness": "gradient predictiveness: max ‖∇L(w − η·d) − g‖₂",
    "beta_smoothness": "effective β-smoothness: max of that / ‖η·d‖₂",
}
ICS_LABELS = {"ics_l2": "‖G − G′‖₂", "ics_cosine": "cos(G, G′)"}
LOGGED = {*LANDSCAPE_SUMMARY, "ics_l2"}  # averaged in log10 over a run's probes


def landscape_per_probe(landscape: pd.DataFrame) -> pd.DataFrame:
    """:func:`bnlab.ml.probe_rows.landscape_summary` of each (variant, seed, step, direction)."""
    keys = [*RUN, "step", "direction"]
    rows = [
        {**dict(zip(keys, key)), **landscape_summary(group["loss"], group["grad_change"], group["distance"])}
        for key, group in landscape.groupby(keys, observed=True, sort=False)
    ]
    return pd.DataFrame(rows, columns=[*keys, *LANDSCAPE_SUMMARY])


def per_run(frame: pd.DataFrame, quantity: str, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """One ``value`` per (variant, seed, *by*): ``quantity``'s mean over the run's rows, in
    log10 where :data:`LOGGED` says so."""
    values = np.log10(frame[quantity]) if quantity in LOGGED else frame[quantity]
    return frame.assign(value=values).groupby([*RUN, *by], observed=True, sort=False)["value"].mean().reset_index()


def landscape_per_run(landscape: pd.DataFrame, quantity: str, direction: str = "gradient") -> pd.DataFrame:
    probes = landscape_per_probe(landscape)
    return per_run(probes[probes["direction"] == direction], quantity)


def geometry_markdown(landscape: pd.DataFrame, ics: pd.DataFrame, heading: str = "##") -> str:
    """The runs' landscape and covariate shift (mean ± std over seeds of each run's log10
    average, cosines as they are) under a ``heading``-level title; empty without them."""
    if landscape.empty and ics.empty:
        return ""
    lines = ["", f"{heading} The loss landscape along each step and internal covariate shift (Santurkar et al.)", ""]
    if not landscape.empty:
        probes = landscape_per_probe(landscape)
        rows = []
        for direction in dict.fromkeys(probes["direction"]):
            stats = [
                over_seeds(per_run(probes[probes["direction"] == direction], q), ["variant"], "value")
                for q in LANDSCAPE_SUMMARY
            ]
            rows += [
                [variant, direction, *(mean_std(s.iloc[i], digits=3) for s in stats)]
                for i, variant in enumerate(stats[0]["variant"])
            ]
        lines += [
            "Per run, the mean over its probes of log10 of each probe's number (more negative: "
            "smoother, more predictive):",
            "",
            markdown_table(
                ["variant", "direction", *(f"log10 {LANDSCAPE_LABELS[q]}" for q in LANDSCAPE_SUMMARY)], rows
            ),
        ]
    if not ics.empty:
        per_layer = {q: over_seeds(per_run(ics, q, by=("layer",)), ["variant", "layer"], "value") for q in ICS_LABELS}
        rows = [
            [row["variant"], row["layer"], mean_std(row, digits=3), mean_std(per_layer["ics_cosine"].iloc[i], digits=3)]
            for i, row in per_layer["ics_l2"].iterrows()
        ]
        lines += [
            "",
            "Internal covariate shift per layer (Definition 2.1), the mean over probes (log10 for the norm):",
            "",
            markdown_table(["variant", "layer", "log10 ‖G − G′‖₂", "cos(G, G′)"], rows),
        ]
    return "\n".join(lines) + "\n"
