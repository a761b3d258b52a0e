"""Where each network stops training on a depth × batch-size grid (Yang et al. 2019's
trainability map), beside the depth their theory predicts: 16 / ln λ(B) layers for BN, none for
a plain He-initialized ReLU network (:mod:`bnlab.analysis.mean_field`).

A cell (variant, batch size, depth) *trains* when the 95% t-interval of its mean test accuracy
over seeds lies at or above :data:`TRAINS`, *fails* when it lies below, and is *undecided* when
the interval straddles it. The prediction "trains up to about the limit, not beyond" then
**agrees** when every depth short of the limit trains and every depth from it on fails,
**disagrees** when a depth from the limit on trains or a depth short of it fails, and is
**undecided** otherwise. A plain network failing short of its (infinite) limit says the budget
is too short for the map to test the theory: it is the control row.
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analysis.init_gradient_tables import limit_text
from bnlab.analysis.markdown import markdown_table
from bnlab.analysis.statistics import mean_interval
from bnlab.analysis.words import AGREES, DISAGREES

# About halfway from chance (10%) to a trained MLP's ~98%, far above what a network that has
# stopped training reaches (Yang et al.'s map shows chance beyond the limit).
TRAINS = 0.5
TRAINED, FAILED, UNDECIDED = "trains", "fails", "undecided"
GRID = ("depth", "batch_size")
RULE = (
    f"a cell **{TRAINED}** when the 95% t-interval of its mean test accuracy over seeds lies at or above "
    f"{TRAINS:.0%} and **{FAILED}** when it lies below; the predicted limit **{AGREES}** when every depth short "
    f"of it trains and every depth from it on fails, **{DISAGREES}** when a depth from it on trains or a depth "
    f"short of it fails, **{UNDECIDED}** otherwise"
)


def is_depth_map(grid_keys) -> bool:
    """Whether an experiment's grid spans depth and batch size (a trainability map)."""
    return set(GRID) <= set(grid_keys)


def cell_states(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, batch_size, depth): seeds, the mean test accuracy, its 95%
    interval and the cell's state (:data:`TRAINED`, :data:`FAILED` or :data:`UNDECIDED`)."""
    rows = []
    for (variant, size, depth), cell in sweep.groupby(["variant", "batch_size", "depth"], sort=False):
        mean, low, high = mean_interval(cell["test_accuracy"])
        state = TRAINED if low >= TRAINS else FAILED if high < TRAINS else UNDECIDED  # NaN: undecided
        rows.append(
            {
                "variant": variant,
                "batch_size": int(size),
                "depth": int(depth),
                "seeds": len(cell),
                "mean": mean,
                "low": low,
                "high": high,
                "state": state,
            }
        )
    columns = ["variant", "batch_size", "depth", "seeds", "mean", "low", "high", "state"]
    return pd.DataFrame(rows, columns=columns).sort_values(["batch_size", "depth"], kind="stable")


def limit_verdict(states: dict[int, str], limit: float) -> str:
    """The word the module's rule gives a predicted ``limit`` against each depth's state."""
    if any(
        (depth >= limit and state == TRAINED) or (depth < limit and state == FAILED) for depth, state in states.items()
    ):
        return DISAGREES
    agreeing = all((state == TRAINED) == (depth < limit) and state != UNDECIDED for depth, state in states.items())
    return AGREES if agreeing else UNDECIDED


def bracket(states: dict[int, str]) -> str:
    """Where the network stops, as the measured depths bound it: between the deepest depth that
    trains and the shallowest deeper one that fails."""
    trained = [depth for depth, state in states.items() if state == TRAINED]
    deepest = max(trained, default=None)
    failed = [depth for depth, state in states.items() if state == FAILED and (deepest is None or depth > deepest)]
    shallowest = min(failed, default=None)
    if deepest is not None and shallowest is not None:
        return f"after {deepest}, by {shallowest}"
    if deepest is not None:
        return f"trains at {deepest}" + ("" if deepest == max(states) else ", undecided deeper")
    if shallowest is not None:
        return f"by {shallowest}" + ("" if shallowest == min(states) else ", undecided shallower")
    return "undecided"


def stopping_depths(sweep: pd.DataFrame, limits: dict[tuple[str, int], float]) -> pd.DataFrame:
    """Per (variant, batch_size) with a prediction (``limits``: the depth limit per variant and
    batch size; NaN where the theory says nothing): each depth's state, where the network
    stops, the predicted limit and the verdict."""
    cells = cell_states(sweep)
    rows = []
    for (variant, size), network in cells.groupby(["variant", "batch_size"], sort=False):
        limit = limits.get((variant, int(size)), math.nan)
        if math.isnan(limit):
            continue
        states = dict(zip(network["depth"], network["state"]))
        rows.append(
            {
                "variant": variant,
                "batch_size": int(size),
                "seeds": int(network["seeds"].min()),
                "cells": "; ".join(
                    f"{depth}: {mean:.0%} [{low:.0%}, {high:.0%}] {state}"
                    for depth, mean, low, high, state in network[["depth", "mean", "low", "high", "state"]].itertuples(
                        index=False
                    )
                ),
                "stops": bracket(states),
                "limit": limit,
                "verdict": limit_verdict(states, limit),
            }
        )
    columns = ["variant", "batch_size", "seeds", "cells", "stops", "limit", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def stopping_markdown(sweep: pd.DataFrame, limits: dict[tuple[str, int], float], heading: str = "###") -> str:
    """The stopping depths' table under a ``heading``-level title, with its rule; empty for a
    grid without depth and batch size or without a prediction."""
    if sweep.empty or not is_depth_map(sweep.columns):
        return ""
    table = stopping_depths(sweep, limits)
    if table.empty:
        return ""
    rows = [
        [row.variant, row.batch_size, row.seeds, row.cells, row.stops, limit_text(row.limit), f"**{row.verdict}**"]
        for row in table.itertuples()
    ]
    header = ["variant", "batch size", "seeds", "depth: test accuracy [95% CI], state", "stops", "16 / ln λ", "verdict"]
    return "\n".join(
        [
            "",
            f"{heading} Where each network stops training (Yang et al. 2019)",
            "",
            f"Rule: {RULE}.",
            "",
            markdown_table(header, rows),
            "",
        ]
    )


def limit_claim(variant: str, limit: float) -> str:
    """The prediction a row of :func:`stopping_depths` tests, in words."""
    if math.isinf(limit):
        return f"{variant} trains at every depth: its gradients do not grow at initialization (the control)"
    return f"{variant} stops training at about 16 / ln λ(B) = {limit:.1f} layers"
