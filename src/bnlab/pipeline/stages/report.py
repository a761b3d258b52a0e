"""Stage `report@<experiment>`: statistics across seeds, the comparison table, probe tables and
figures → reports/<experiment>/ (:mod:`bnlab.analysis.report`), all of it also on the
experiment's parent run in MLflow."""

import json
import sys
from contextlib import ExitStack

from bnlab.analysis.report import FILES, FOLDERS, aggregate_metrics, build_report
from bnlab.core import layout
from bnlab.core.atomic import atomic_path
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
    from bnlab.tracking import copies, logged, runs

    client, experiment_id = runs.connect()
    lineage = runs.lineage(f"report@{experiment_name}", meta["data_fingerprint"])

    with copies.results_run(client, experiment_id, experiment_name, meta["pipeline_key"], lineage) as parent_id, \
            ExitStack() as outputs:
        # Each output is written under a temporary name and renamed into place at the end.
        paths = {name: outputs.enter_context(atomic_path(output / name, directory=name in FOLDERS))
                 for name in (*FILES, *FOLDERS)}
        report.write(paths)
        client.log_artifacts(parent_id, str(paths["figures"]), "figures")  # the same PNGs
        client.log_text(parent_id, report.table(), "comparison.md")
        client.log_dict(parent_id, report.summary, "metrics.json")
        logged.log_metrics(client, parent_id, aggregate_metrics(report.summary, bool(report.grid_keys)))
    for line in report.lines():
        print(f"wrote {output}/: {line}")


def main(argv: list[str] | None = None) -> int:
    return stage_main("report", __doc__.splitlines()[0], run, argv, per_experiment=True)


if __name__ == "__main__":
    sys.exit(main())
