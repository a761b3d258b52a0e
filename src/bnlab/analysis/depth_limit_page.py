"""The results page's depth limits: where each trainability map's networks stop training
(:mod:`bnlab.analysis.stopping_depth`), beside Yang et al.'s 16 / ln λ(B) computed from the
networks' settings as their reports wrote them, so the page depends on reports/ alone."""

from __future__ import annotations

from bnlab.analysis.claims import YANG
from bnlab.analysis.init_gradient_tables import limit_text, predicted_rate
from bnlab.analysis.markdown import markdown_table
from bnlab.analysis.mean_field import trainable_depth
from bnlab.analysis.published import ExperimentResults
from bnlab.analysis.stopping_depth import RULE, is_depth_map, limit_claim, stopping_depths, stopping_markdown
from bnlab.analysis.words import AGREES


def reported_depth_limits(r: ExperimentResults) -> dict[tuple[str, int], float]:
    """16 / ln λ per (variant, batch size) of a trainability map, from settings.csv."""
    return {
        (variant, int(size)): trainable_depth(
            predicted_rate(lambda name, v=variant, b=size: r.setting(v, name, {"batch_size": b}), int(size))
        )
        for variant in r.variants
        for size in sorted(r.sweep["batch_size"].unique())
    }


def map_section(r: ExperimentResults) -> str:
    """A grid experiment's stopping depths (empty unless it maps depth × batch size)."""
    return stopping_markdown(r.sweep, reported_depth_limits(r)) if is_depth_map(r.grid_keys) else ""


def depth_limit_rows(results: dict[str, ExperimentResults]) -> list[tuple[str, object]]:
    """(experiment, row of :func:`stopping_depths`) for every trainability map."""
    return [
        (r.name, row)
        for r in results.values()
        if is_depth_map(r.grid_keys)
        for row in stopping_depths(r.sweep, reported_depth_limits(r)).itertuples()
    ]


def where(name: str, row) -> str:
    return f"`{name}` at batch_size={row.batch_size}"


def depth_limit_table(rows: list[tuple[str, object]]) -> str:
    """The predictions' verdict rows, with their rule (empty without a trainability map)."""
    if not rows:
        return ""
    header = ["prediction", "source", "experiment", "stops (measured)", "16 / ln λ", "seeds", "verdict"]
    cells = [
        [limit_claim(row.variant, row.limit), YANG, where(name, row), row.stops, limit_text(row.limit), row.seeds]
        + [f"**{row.verdict}**"]
        for name, row in rows
    ]
    return f"Depth limits, read from the trainability maps. Rule: {RULE}.\n\n" + markdown_table(header, cells)


def contrary_lines(rows: list[tuple[str, object]]) -> list[str]:
    """The predictions these maps do not support, as the page's list says them."""
    return [
        f"- {limit_claim(row.variant, row.limit)} ({YANG}; {where(name, row)}): **{row.verdict}**"
        for name, row in rows
        if row.verdict != AGREES
    ]
