"""Numbers for the verdict from probes.csv and steps.csv: drift of the inputs to the
nonlinearities, dead units, accuracy along training, and what BN's moving averages cost.

Each function returns one row per (variant, layer) or per variant with the mean and std over
seeds, so every claim in the README comes with its spread.
"""

from __future__ import annotations

import pandas as pd

from bnlab.analysis.markdown import markdown_table
from bnlab.ml.probe_rows import POOLED


def over_seeds(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Mean, std and count over seeds; variants in order of first appearance, the rest sorted."""
    order = {variant: i for i, variant in enumerate(dict.fromkeys(frame["variant"]))}
    grouped = frame.groupby(by, observed=True, sort=False)[column]
    stats = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "seeds"}).reset_index()
    stats = stats.sort_values(by, key=lambda c: c.map(order) if c.name == "variant" else c)
    return stats.reset_index(drop=True)


def drift_per_run(probes: pd.DataFrame) -> pd.DataFrame:
    """Covariate shift, measured: how far the median input to each layer's nonlinearity (all
    units pooled) moves from the first probe to the last, in units of its 15–85th percentile
    width at the last probe. 0: the distribution stayed put; 1: it moved by its own width.
    One row per (variant, seed, layer)."""
    pooled = probes[probes["unit"] == POOLED].sort_values("step")
    ends = (
        pooled.groupby(["variant", "seed", "layer"], observed=True, sort=False)
        .agg(first_p50=("p50", "first"), last_p50=("p50", "last"), last_p15=("p15", "last"), last_p85=("p85", "last"))
        .reset_index()
    )
    ends["drift"] = (ends["last_p50"] - ends["first_p50"]).abs() / (ends["last_p85"] - ends["last_p15"])
    return ends[["variant", "seed", "layer", "drift"]]


def drift(probes: pd.DataFrame) -> pd.DataFrame:
    """:func:`drift_per_run`'s mean and std over seeds, per (variant, layer)."""
    return over_seeds(drift_per_run(probes), ["variant", "layer"], "drift")


def dead_per_run(probes: pd.DataFrame) -> pd.DataFrame:
    """The fraction of dead units per (variant, seed, layer): at the last probe (``final``) and
    the most at any probe (``peak``)."""
    pooled = probes[probes["unit"] == POOLED].sort_values("step")
    return (
        pooled.groupby(["variant", "seed", "layer"], observed=True, sort=False)
        .agg(final=("dead_fraction", "last"), peak=("dead_fraction", "max"))
        .reset_index()
    )


def dead_units(probes: pd.DataFrame) -> pd.DataFrame:
    """:func:`dead_per_run`'s mean and std over seeds, per (variant, layer)."""
    per_run = dead_per_run(probes)
    final = over_seeds(per_run, ["variant", "layer"], "final")
    peak = over_seeds(per_run, ["variant", "layer"], "peak")
    return final.merge(peak, on=["variant", "layer", "seeds"], suffixes=("_final", "_peak"))


def nearest_steps(steps: pd.DataFrame, at: list[int]) -> list[int]:
    """The probed steps nearest to each of ``at``."""
    measured = sorted(steps["step"].unique())
    return sorted({min(measured, key=lambda s: abs(s - target)) for target in at})


def accuracy_at(steps: pd.DataFrame, at: list[int], column: str = "test_accuracy") -> pd.DataFrame:
    """``column`` at the probes nearest to each of ``at`` steps, mean and std over seeds."""
    picked = steps[steps["step"].isin(nearest_steps(steps, at))]
    return over_seeds(picked, ["variant", "step"], column)


def moving_average_cost(steps: pd.DataFrame, by: list[str] = ()) -> pd.DataFrame:
    """For BN variants, at the last probe (of each grid point ``by``): accuracy on the probe
    images in training mode (mini-batch statistics) minus accuracy on the same images with the
    moving averages."""
    return over_seeds(moving_average_gaps(steps, by), [*by, "variant"], "gap")


def moving_average_gaps(steps: pd.DataFrame, by: list[str] = ()) -> pd.DataFrame:
    """:func:`moving_average_cost` per run: one ``gap`` per (grid point, variant, seed)."""
    keys = [*by, "variant", "seed"]
    last = steps.sort_values("step").groupby(keys, observed=True, sort=False).last().reset_index()
    last = last.dropna(subset=["train_mode_accuracy"])
    return last.assign(gap=last["train_mode_accuracy"] - last["val_accuracy"])


def grid_probe_markdown(steps: pd.DataFrame, grid_keys: list[str], heading: str = "##") -> str:
    """A grid's probe numbers: BN's training-mode minus inference-mode accuracy at each point's
    last probe (mean ± std over seeds, points); empty without BN or probes."""
    cost = moving_average_cost(steps, grid_keys) if not steps.empty else steps
    if cost.empty:
        return ""
    lines = [
        "",
        f"{heading} BN's batch statistics against its moving averages",
        "",
        "Accuracy on the probe images in training mode (each batch of the training size normalized "
        "by its own statistics) minus inference mode (moving averages), at the last probe (points):",
        "",
        markdown_table(
            [*grid_keys, "variant", "difference"],
            [[*(row[k] for k in grid_keys), row["variant"], mean_std(row, scale=100)] for _, row in cost.iterrows()],
        ),
    ]
    return "\n".join(lines) + "\n"


def mean_std(row, column: str = "", scale: float = 1.0, digits: int = 2) -> str:
    mean, std = row[f"mean{column}"] * scale, row[f"std{column}"] * scale
    return f"{mean:.{digits}f} ± {0.0 if pd.isna(std) else std:.{digits}f}"


def probe_markdown(probes: pd.DataFrame, steps: pd.DataFrame, heading: str = "##") -> str:
    """The probe numbers as tables (mean ± std over seeds) under a ``heading``-level title;
    empty without probes."""
    if probes.empty:
        return ""
    last = int(steps["step"].max())
    lines = [
        "",
        f"{heading} Inside the networks (probes)",
        "",
        "Drift: how far the median input to a layer's nonlinearity (all units pooled) moved from "
        "the first probe to the last, in units of its 15-85th percentile width at the end.",
        "",
    ]
    dead = dead_units(probes).set_index(["variant", "layer"])
    rows = []
    for _, row in drift(probes).iterrows():
        d = dead.loc[(row["variant"], row["layer"])]
        rows.append(
            [
                row["variant"],
                row["layer"],
                mean_std(row),
                f"{mean_std(d, '_final', 100, 1)}%",
                f"{mean_std(d, '_peak', 100, 1)}%",
            ]
        )
    lines.append(markdown_table(["variant", "layer", "drift", "dead units at the end", "dead units at most"], rows))
    checkpoints = sorted({min(1000, last), last // 10, last // 2, last})
    lines += [
        "",
        "Test accuracy during training (%):",
        "",
        markdown_table(
            ["variant", "step", "test accuracy"],
            [
                [row["variant"], row["step"], mean_std(row, scale=100)]
                for _, row in accuracy_at(steps, checkpoints).iterrows()
            ],
        ),
    ]
    cost = moving_average_cost(steps)
    if not cost.empty:
        lines += [
            "",
            "BN in training mode (batch statistics) minus inference mode (moving averages), "
            f"accuracy on the probe images at step {last} (points):",
            "",
            markdown_table(
                ["variant", "difference"], [[row["variant"], mean_std(row, scale=100)] for _, row in cost.iterrows()]
            ),
        ]
    return "\n".join(lines) + "\n"
