"""Each variant at its best: the settings an experiment's selection chooses (``tune``).

Every variant trains every candidate (a combination of ``tune.grid``'s values) on every
selection seed, at every point of the experiment's grid (:func:`bnlab.experiments.jobs.selection_jobs`).
A candidate's score is the mean over the selection seeds of ``tune.metric`` on the validation
split at the end of the fit. The rule: the highest mean accuracy (the lowest mean loss) wins; a
seed that diverged (no finite value) makes its candidate's mean the worst there is; among equal
means, the candidate declared first wins. The test split is never read.

The choice is not stored apart from what it was made from: the stages that need it read the
selection jobs' histories (estimator.json) and apply the same rule. Nothing here imports
TensorFlow or MLflow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bnlab.core.layout import MODEL_META_FILE
from bnlab.experiments.jobs import Job, Point, model_dir, point_columns, point_label, selection_jobs
from bnlab.experiments.params import ExperimentParams

# (variant, grid point's label) → the chosen candidate. By label: a point's values may be lists.
Selected = dict[tuple[str, str], Point]
Scores = list[tuple[Job, float]]  # every selection job with its score, in any order


def final_score(history: dict[str, list[float]], metric: str) -> float:
    """``metric`` at the fit's end; NaN where it was never finite (a diverged fit)."""
    values = history.get(metric) or [math.nan]
    return float(values[-1]) if math.isfinite(values[-1]) else math.nan


def choose(experiment: ExperimentParams, scores: Scores) -> Selected:
    """Each (variant, grid point)'s candidate by the rule above; ``scores``: every selection
    job's :func:`final_score`."""
    higher_is_better = experiment.tune.metric.endswith("accuracy")
    candidates = experiment.tune.candidates()
    selected = {}
    for group, means in candidate_means(experiment, scores).items():
        ranked = [(_rank(mean, higher_is_better), order) for order, mean in enumerate(means)]
        selected[group] = candidates[min(ranked)[1]]  # the best rank; among equals, the first declared
    return selected


def candidate_means(experiment: ExperimentParams, scores: Scores) -> dict[tuple[str, str], list[float]]:
    """{(variant, grid point's label): [mean score over the selection seeds, per candidate in
    declared order]}; NaN where any seed diverged."""
    found: dict = {}
    for job, score in scores:
        group = found.setdefault((job.variant, point_label(job.point)), {})
        group.setdefault(point_label(job.tuned), []).append(score)
    labels = [point_label(candidate) for candidate in experiment.tune.candidates()]
    return {group: [_mean(by[label]) for label in labels] for group, by in found.items()}


def _mean(values: list[float]) -> float:
    return math.nan if any(math.isnan(v) for v in values) else math.fsum(values) / len(values)


def _rank(mean: float, higher_is_better: bool) -> float:
    if math.isnan(mean):
        return math.inf
    return -mean if higher_is_better else mean


def read_scores(models: Path, name: str, experiment: ExperimentParams) -> Scores:
    """Every selection job's score, from its model folder's history."""
    metric = experiment.tune.metric
    return [
        (job, final_score(json.loads((model_dir(models, job) / MODEL_META_FILE).read_text())["history"], metric))
        for job in selection_jobs(name, experiment)
    ]


def read_selected(models: Path, name: str, experiment: ExperimentParams) -> Selected | None:
    """What the selection in models/<experiment>/ chose; None for an experiment that does not tune."""
    if experiment.tune is None:
        return None
    return choose(experiment, read_scores(models, name, experiment))


def selection_rows(experiment: ExperimentParams, scores: Scores, selected: Selected) -> list[dict]:
    """One row per selection job: variant, the grid's settings, the candidate's, seed, the
    score (named by the metric) and whether its candidate was chosen."""
    return [
        {
            "variant": job.variant,
            **point_columns(job.point),
            **point_columns(job.tuned),
            "seed": job.seed,
            experiment.tune.metric: score,
            "chosen": selected[(job.variant, point_label(job.point))] == job.tuned,
        }
        for job, score in scores
    ]


def selected_params(experiment: ExperimentParams, selected: Selected) -> dict:
    """metrics.json's ``selected``: variant → the chosen settings, or, with a grid, variant →
    grid point label → the chosen settings."""
    found: dict = {}
    for (variant, label), candidate in selected.items():
        chosen = point_columns(candidate)
        if experiment.grid:
            found.setdefault(variant, {})[label] = chosen
        else:
            found[variant] = chosen
    return found
