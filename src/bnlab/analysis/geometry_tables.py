"""Numbers for the verdict from landscape.csv and ics.csv (Santurkar et al. 2018, measured by
:mod:`bnlab.ml.geometry`): each probe's landscape summary, one number per run, and the tables
and figures' data, each with the mean and std over seeds.

One number per run: the quantities span orders of magnitude over training (the first steps'
gradients are the largest), so a run's landscape summaries and covariate-shift norms are
averaged over its probes in log10 (a geometric mean: every probe counts alike, early or late);
cosines are averaged as they are. Layers are averaged alike.

β-smoothness scaled by ‖w‖²: a Dense kernel that BN follows is scale-invariant, so the loss's
curvature along it falls as 1/‖w‖², and ‖w‖ grows under Adam. Each probe's β is multiplied by
‖w‖², the mean over the hidden layers of their kernels' squared norms (weight_norms.csv, recorded
after the probe's step, which moves ‖w‖ by one step's fraction of it), to read β at the networks'
equal weight scale.
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
    "beta_smoothness_scaled": "β-smoothness × ‖w‖² of the kernels BN follows",
}
ICS_LABELS = {"ics_l2": "‖G − G′‖₂", "ics_cosine": "cos(G, G′)"}
SCALED_BETA = "beta_smoothness_scaled"  # β·‖w‖² (see the module's docstring)
LOGGED = {*LANDSCAPE_SUMMARY, SCALED_BETA, "ics_l2"}  # averaged in log10 over a run's probes


def landscape_per_probe(landscape: pd.DataFrame) -> pd.DataFrame:
    """:func:`bnlab.ml.probe_rows.landscape_summary` of each (variant, seed, step, direction)."""
    keys = [*RUN, "step", "direction"]
    rows = [
        {**dict(zip(keys, key)), **landscape_summary(group["loss"], group["grad_change"], group["distance"])}
        for key, group in landscape.groupby(keys, observed=True, sort=False)
    ]
    return pd.DataFrame(rows, columns=[*keys, *LANDSCAPE_SUMMARY])


def with_scaled_beta(probes: pd.DataFrame, weight_norms: pd.DataFrame) -> pd.DataFrame:
    """``probes`` (:func:`landscape_per_probe`) with :data:`SCALED_BETA`: each probe's
    β-smoothness times the hidden kernels' mean ‖w‖² at its step. Raises ValueError when a probe's
    step has no kernel norms."""
    squared = (
        weight_norms.assign(kernel_sq=np.square(weight_norms["kernel_norm"]))
        .groupby([*RUN, "step"], observed=True)["kernel_sq"]
        .mean()
        .reset_index()
    )
    found = probes.merge(squared, on=[*RUN, "step"], how="left", validate="many_to_one")
    unmatched = found[found["kernel_sq"].isna()]
    if not unmatched.empty:
        first = unmatched.iloc[0]
        raise ValueError(
            f"no kernel norms at landscape probe step {first['step']} ({first['variant']}, seed {first['seed']}): "
            "weight_norms.csv must have every geometry step (probes.weight_norms: true)"
        )
    return found.assign(**{SCALED_BETA: found["beta_smoothness"] * found["kernel_sq"]}).drop(columns="kernel_sq")


def per_run(frame: pd.DataFrame, quantity: str, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """One ``value`` per (variant, seed, *by*): ``quantity``'s mean over the run's rows, in
    log10 where :data:`LOGGED` says so."""
    values = np.log10(frame[quantity]) if quantity in LOGGED else frame[quantity]
    return frame.assign(value=values).groupby([*RUN, *by], observed=True, sort=False)["value"].mean().reset_index()


def probe_summaries(landscape: pd.DataFrame, weight_norms: pd.DataFrame | None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Each probe's summaries (:func:`landscape_per_probe`), with :data:`SCALED_BETA` where
    ``weight_norms`` were recorded, and the summaries' names."""
    probes = landscape_per_probe(landscape)
    if weight_norms is None or weight_norms.empty:
        return probes, LANDSCAPE_SUMMARY
    return with_scaled_beta(probes, weight_norms), (*LANDSCAPE_SUMMARY, SCALED_BETA)


def landscape_per_run(
    landscape: pd.DataFrame, quantity: str, direction: str = "gradient", weight_norms: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One value of ``quantity`` per run along ``direction``; :data:`SCALED_BETA` needs
    ``weight_norms``."""
    probes = landscape_per_probe(landscape)
    probes = probes[probes["direction"] == direction]
    if quantity == SCALED_BETA:
        probes = with_scaled_beta(probes, weight_norms)
    return per_run(probes, quantity)


def geometry_markdown(
    landscape: pd.DataFrame, ics: pd.DataFrame, weight_norms: pd.DataFrame | None = None, heading: str = "##"
) -> str:
    """The runs' landscape and covariate shift (mean ± std over seeds of each run's log10
    average, cosines as they are) under a ``heading``-level title, with β·‖w‖² where
    ``weight_norms`` has the probes' steps; empty without them."""
    if landscape.empty and ics.empty:
        return ""
    lines = ["", f"{heading} The loss landscape along each step and internal covariate shift (Santurkar et al.)", ""]
    if not landscape.empty:
        probes, quantities = probe_summaries(landscape, weight_norms)
        rows = []
        for direction in dict.fromkeys(probes["direction"]):
            stats = [
                over_seeds(per_run(probes[probes["direction"] == direction], q), ["variant"], "value")
                for q in quantities
            ]
            rows += [
                [variant, direction, *(mean_std(s.iloc[i], digits=3) for s in stats)]
                for i, variant in enumerate(stats[0]["variant"])
            ]
        lines += [
            "Per run, the mean over its probes of log10 of each probe's number (more negative: "
            "smoother, more predictive):",
            "",
            markdown_table(["variant", "direction", *(f"log10 {LANDSCAPE_LABELS[q]}" for q in quantities)], rows),
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
