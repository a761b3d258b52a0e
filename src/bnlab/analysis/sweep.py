"""A grid experiment's results: one row per job (sweep.csv), statistics per grid point, and
the summary that metrics.json holds, each variant compared with the baseline at the same point."""

from __future__ import annotations

import pandas as pd

from bnlab.analysis.columns import SWEEP_COLUMNS
from bnlab.analysis.statistics import adjust_holm, per_seed_frame, summarize
from bnlab.experiments.jobs import point_label
from bnlab.experiments.params import COMPARISON_KEY


def sweep_frame(results: list[dict], histories: list[dict], grid_keys: list[str], variants: list[str]) -> pd.DataFrame:
    """One row per job: the grid's columns, variant, seed, test metrics and the last epoch's
    training loss (``histories`` in the same order as ``results``)."""
    rows = [
        {
            **{k: result[k] for k in grid_keys},
            **{k: result[k] for k in SWEEP_COLUMNS if k in result},
            "final_train_loss": history["train_loss"][-1],
        }
        for result, history in zip(results, histories)
    ]
    frame = pd.DataFrame(rows, columns=[*grid_keys, *SWEEP_COLUMNS])
    frame["variant"] = pd.Categorical(frame["variant"], categories=variants, ordered=True)
    return frame.sort_values([*grid_keys, "variant", "seed"]).reset_index(drop=True)


def point_summaries(sweep: pd.DataFrame, grid_keys: list[str], variants: list[str], baseline: str) -> dict:
    """metrics.json of a grid experiment: per point (labelled like the jobs, e.g.
    ``learning_rate=0.001``) the usual summary of that point's per-seed results, with Holm's
    adjustment over every comparison at every point (one family: the experiment)."""
    summaries = {}
    for values, rows in sweep.groupby(grid_keys, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        label = point_label(tuple(zip(grid_keys, values)))
        summaries[label] = summarize(per_seed_frame(rows.to_dict("records"), variants), baseline, adjust=False)
    adjust_holm([comp for summary in summaries.values() for comp in summary[COMPARISON_KEY].values()])
    return summaries


def curve_stats(sweep: pd.DataFrame, x: str, column: str) -> dict[str, pd.DataFrame]:
    """Per variant, ``column``'s mean and std over seeds at each value of ``x``."""
    return {
        str(variant): rows.groupby(x)[column].agg(["mean", "std"]).fillna(0.0)
        for variant, rows in sweep.groupby("variant", observed=True, sort=True)
    }
