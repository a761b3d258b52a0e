"""Stage `report@<experiment>`: statistics across seeds, the comparison table, probe tables and
figures → reports/<experiment>/ (:mod:`bnlab.analysis.report`), all of it also on the
experiment's parent run in MLflow; an experiment without a grid also has its models registered
(:mod:`bnlab.tracking.registry`)."""

import json
import sys
from contextlib import ExitStack

from bnlab.analysis.report import FILES, FOLDERS, build_report, parent_metrics
from bnlab.core import layout
from bnlab.core.atomic import atomic_path
from bnlab.data.mnist import file_digest
from bnlab.experiments.jobs import model_dir
from bnlab.experiments.params import load_params
from bnlab.pipeline.command import stage_main


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    models, output = layout.models_dir(experiment_name), layout.reports_dir(experiment_name)
    results = json.loads((layout.eval_dir(experiment_name) / layout.TEST_METRICS_FILE).read_text())
    report = build_report(experiment_name, experiment, models, results)
    meta = json.loads((models / layout.PIPELINE_FILE).read_text())
    # Only now the import that takes seconds (MLflow): bad inputs are reported first.
    from bnlab.tracking import comparison, copies, registry, runs
    from bnlab.tracking.lineage import stage_lineage

    client, experiment_id = runs.connect()
    lineage = stage_lineage(f"report@{experiment_name}", meta["data_fingerprint"])

    with (
        copies.results_run(client, experiment_id, experiment_name, meta["pipeline_key"], lineage) as parent_id,
        ExitStack() as outputs,
    ):
        # Each output is written under a temporary name and renamed into place at the end.
        paths = {
            name: outputs.enter_context(atomic_path(output / name, directory=name in FOLDERS))
            for name in (*FILES, *FOLDERS)
        }
        report.write(paths)
        client.log_artifacts(parent_id, str(paths["figures"]), "figures")  # the same PNGs
        client.log_text(parent_id, report.table(), "comparison.md")
        client.log_dict(parent_id, report.metrics, "metrics.json")
        comparison.log_summary(
            client,
            parent_id,
            parent_metrics(report.summary, bool(report.grid_keys)),
            list(report.summary) if report.grid_keys else None,
        )
        registered = registry.skipped(experiment.grid, lineage) or registry.register(
            client,
            experiment_name,
            experiment.description,
            [
                candidate(client, experiment_id, parent_id, models, job, report.final_val_accuracy(job))
                for job in report.jobs
            ],
        )
    for line in report.lines():
        print(f"wrote {output}/: {line}")
    for line in registered:
        print(line)


def candidate(client, experiment_id: str, parent_id: str, models, job, val_accuracy: float):
    """One seed's model for the registry: the run holding the very model evaluate evaluated."""
    from bnlab.tracking import registry, runs

    digest = file_digest(model_dir(models, job) / "weights.npz")
    run_id = runs.find_child(client, experiment_id, parent_id, job, digest)
    if run_id is None:
        raise runs.TrackingError(
            f"no finished run of {job.run_name} holds its model {digest[:12]}: "
            f"run evaluate@{job.experiment} first (dvc repro does)"
        )
    return registry.Candidate(job.variant, job.seed, run_id, digest, val_accuracy)


def main(argv: list[str] | None = None) -> int:
    return stage_main("report", __doc__.splitlines()[0], run, argv, per_experiment=True)


if __name__ == "__main__":
    sys.exit(main())
