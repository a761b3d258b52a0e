"""The report's selection table: each candidate's mean score over the selection seeds, per
variant (and grid point), the chosen one marked, and marked again where it sits at the edge of
the values tried."""

from __future__ import annotations

import pandas as pd

from bnlab.analysis.markdown import markdown_table
from bnlab.experiments.params import ExperimentParams


def selection_markdown(selection: pd.DataFrame, experiment: ExperimentParams) -> str:
    """The selection, if any: each candidate's mean score over the selection seeds, per variant
    (and grid point), the chosen one marked."""
    if selection.empty:
        return ""
    metric = experiment.tune.metric
    keys = [*(experiment.grid or {}), "variant", *experiment.tune.grid]
    means = selection.groupby(keys, sort=False).agg(mean=(metric, "mean"), chosen=("chosen", "first")).reset_index()
    rows = [
        [*(row[k] for k in keys), f"{row['mean']:.4f}", chosen_mark(row, experiment.tune.grid) if row["chosen"] else ""]
        for _, row in means.iterrows()
    ]
    seeds = ", ".join(map(str, experiment.tune.seeds))
    return (
        f"\n## Selection: {metric} on the validation split, mean over seeds {seeds}\n\n"
        + markdown_table([*keys, f"mean {metric}", ""], rows)
        + f"\n{EDGE_NOTE}\n"
    )


EDGE_NOTE = "*at the grid's edge*: the chosen value is the lowest or highest tried, so the best may lie beyond it."


def chosen_mark(row: pd.Series, tune_grid: dict[str, list]) -> str:
    """**chosen**, and for each tuned setting whose chosen value is the lowest or highest of its
    values (numbers only), which edge it sits at."""
    edges = [
        f"the lowest {key}" if row[key] == min(values) else f"the highest {key}"
        for key, values in tune_grid.items()
        if all(isinstance(v, (int, float)) for v in values)
        and len(values) > 1
        and row[key] in (min(values), max(values))
    ]
    return "**chosen**" + (f", at the grid's edge ({', '.join(edges)})" if edges else "")
