"""One model of a comparison on the official test set, wherever it runs: in the evaluate stage's
own process, or in a local worker beside the others (:func:`bnlab.execution.local.run_all`).
It finds the run that holds this very model (or records one for a model DVC restored), logs
the test metrics and MLflow's classifier evaluation to it, and returns the row and the
predictions that the stage writes into eval/<experiment>/.

Each model is evaluated alone, so where it runs never changes a byte: the stage writes the rows
in the experiment's job order, whatever order they finished in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnlab.data.mnist import file_digest
from bnlab.data.splits import flat_pixels
from bnlab.experiments.jobs import Job, point_columns, point_label
from bnlab.experiments.params import Params


@dataclass(frozen=True)
class EvaluationRequest:
    """Everything one model's evaluation needs, picklable (a worker has nothing of the stage's)."""

    params: Params
    job: Job
    folder: str  # the model's folder under models/<experiment>/
    files: tuple[tuple[str, str], ...]  # ((MLflow's name of the test split, its file),)
    store: str  # the tracking URI, without credentials
    experiment_id: str
    parent_id: str
    lineage: tuple[tuple[str, str], ...]
    credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # never in a log


@dataclass(frozen=True)
class EvaluatedModel:
    job: Job
    row: dict  # eval/<experiment>/test_metrics.json's entry for the job
    predicted: np.ndarray  # the predicted digit of every test image

    def predictions(self, labels: np.ndarray):
        """Its rows of eval/<experiment>/predictions.csv: the variant, seed and grid point, each
        test image's digit and the model's prediction."""
        import pandas as pd

        job = self.job
        return pd.DataFrame(
            {
                "variant": job.variant,
                "seed": job.seed,
                **point_columns(job.point),
                "actual": labels,
                "predicted": self.predicted,
            }
        )


def network(request: EvaluationRequest) -> str:
    """The key a worker's models are scheduled by: within one experiment the variant and the
    grid point decide the network, whose inference a worker compiles once (read from the job
    alone: scheduling reads no params, as it changes no result)."""
    return f"{request.job.variant} {point_label(request.job.point)}"


def evaluate_model(request: EvaluationRequest) -> EvaluatedModel:
    """Test the model, log its metrics and MLflow's evaluation to the run that holds it."""
    from bnlab.execution.job import load_splits, store_client
    from bnlab.ml import bn_statistics
    from bnlab.ml.evaluation import accuracy_by_statistics, evaluate
    from bnlab.tracking import logged, runs
    from bnlab.tracking.evaluation import evaluate_predictions
    from bnlab.tracking.job_runs import record_restored_model

    client, job, folder = store_client(request), request.job, Path(request.folder)
    lineage = dict(request.lineage)
    ((name, test),) = request.files
    x_test, y_test = load_splits(request.files)[name]
    estimator, digest = load_model(job, folder)
    pixels = flat_pixels(x_test)
    metrics = evaluate(estimator, pixels, y_test)
    # The run that holds this very model; a model no run holds (DVC restored it) gets one.
    run_id = runs.find_child(client, request.experiment_id, request.parent_id, job, digest) or record_restored_model(
        client, request.experiment_id, request.parent_id, request.params, job, estimator, lineage, digest
    )
    scores = {k: metrics[k] for k in runs.TEST_METRICS}
    logged.log_metrics(client, run_id, scores)
    logged.log_datasets(client, run_id, {name: (x_test, y_test)}, {name: test})
    classes = estimator.classes_.tolist()
    evaluate_predictions(
        client, request.experiment_id, run_id, y_test, metrics["predicted"], classes, test, lineage, digest
    )
    row = {"variant": job.variant, "seed": job.seed, **point_columns(job.point), **scores}
    if (folder / bn_statistics.FILE).exists():  # a BN network: tested with each kind too
        with np.load(folder / bn_statistics.FILE, allow_pickle=False) as arrays:
            row |= accuracy_by_statistics(estimator, dict(arrays), pixels, y_test)
    return EvaluatedModel(job, row, metrics["predicted"])


def load_model(job: Job, folder: Path):
    """The estimator saved in ``folder`` and its weights' digest; a file truncated or edited by
    hand stops the stage with one line naming the model and the way back."""
    from bnlab.execution.job import JobFailed
    from bnlab.ml.estimator import KerasMLPClassifier

    try:
        return KerasMLPClassifier.load(folder), file_digest(folder / "weights.npz")
    except Exception as exc:
        raise JobFailed(
            f"model {job.run_name} cannot be read from {folder}: {type(exc).__name__}: {exc} "
            f"(`dvc checkout {folder.parent}` restores the trained models)"
        ) from exc
