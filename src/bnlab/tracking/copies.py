"""Runs made from other runs: results carried over from an earlier execution that produced the
same models, and copies of an execution for a DVC experiment whose outputs DVC restored."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.entities import Metric, Param

from bnlab.tracking import comparison, evaluation
from bnlab.tracking.job_cache import JOB_KEY_TAG
from bnlab.tracking.logged import log_metrics
from bnlab.tracking.runs import (
    COPIED,
    HOST_TAG,
    KEY_TAG,
    MODEL_DIGEST_TAG,
    PARENT_RUN_ID,
    PID_TAG,
    PIPELINE_ROLE,
    PROVENANCE_TAG,
    RESTORED,
    ROLE_TAG,
    SOURCE_RUN_TAG,
    STARTED_TAG,
    TEST_METRICS,
    MlflowClient,
    create_run,
    find_parent,
    owned_run,
    pipeline_run,
    provenance,
    run_lifecycle,
)

# Tags a copy does not take over: MLflow's own, the writer's, the job cache's, the lineage, the
# provenance (a copy has its own).
NOT_COPIED = ("mlflow.", HOST_TAG, PID_TAG, STARTED_TAG, JOB_KEY_TAG, "dvc.", PROVENANCE_TAG, SOURCE_RUN_TAG)


@contextmanager
def results_run(client: MlflowClient, experiment_id: str, experiment: str, key: str, tags: dict) -> Iterator[str]:
    """The parent run evaluate and report log to, open for the block: this key's newest finished
    pipeline run (ended by whoever created it); under ``dvc exp run``, when another DVC
    experiment made it, a copy of it and its children (``bnlab.provenance=copied``); or, when DVC
    restored the models from its cache into a store that never saw them, a new one
    (``bnlab.provenance=restored``). A run this stage creates, it ends
    (:func:`bnlab.tracking.runs.run_lifecycle`)."""
    found = find_parent(client, experiment_id, key)
    exp_name = tags.get("dvc.exp_name")
    if found is not None and exp_name and client.get_run(found).data.tags.get("dvc.exp_name") != exp_name:
        # `dvc exp run` restored the models from DVC's run cache: no stage of this DVC
        # experiment trained them, so give it copies of the runs that did.
        parent = client.get_run(found)
        copy = create_run(
            client, experiment_id, parent.info.run_name, {**_copied_tags(parent), **tags, **provenance(COPIED, found)}
        )
        with run_lifecycle(client, copy.info.run_id) as run_id:
            copy_execution(client, experiment_id, parent, run_id, tags)
            yield run_id
    elif found is not None:
        client.set_tag(found, "dvc_stage", tags["dvc_stage"])  # the stage that wrote to it last
        with run_lifecycle(client, found, owned=False) as run_id:
            yield run_id
    else:
        with pipeline_run(client, experiment_id, experiment, key, {**tags, **provenance(RESTORED)}) as run_id:
            yield run_id


def carry_over_results(
    client: MlflowClient, experiment_id: str, key: str, parent_id: str, children: dict[str, tuple[str, str]]
) -> str | None:
    """Copy test metrics and the comparison from an earlier finished execution that produced the
    very same models (``children``: run name → (run id, model digest)).

    When training re-runs and writes byte-identical models, DVC rightly skips evaluate and
    report; without this, the new runs would lack what those stages log. Each run that receives
    results is tagged ``bnlab.source_run`` with the run they came from (the evaluation runs, with
    the confusion matrices, stay under the source's model runs). Returns the source parent's id,
    if any.
    """
    earlier = client.search_runs(
        [experiment_id],
        f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = '{PIPELINE_ROLE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for previous in (run for run in earlier if run.info.run_id != parent_id):
        old = {
            run.info.run_name: run
            for run in client.search_runs(
                [experiment_id], f"tags.`{PARENT_RUN_ID}` = '{previous.info.run_id}' and attributes.status = 'FINISHED'"
            )
        }
        if not all(
            name in old
            and old[name].data.tags.get(MODEL_DIGEST_TAG) == digest
            and "test_accuracy" in old[name].data.metrics
            for name, (_, digest) in children.items()
        ):
            continue
        for name, (run_id, _) in children.items():
            source = old[name]
            log_metrics(
                client,
                run_id,
                {k: v for k, v in source.data.metrics.items() if k in (*TEST_METRICS, *evaluation.METRICS)},
            )
            client.set_tag(run_id, SOURCE_RUN_TAG, source.info.run_id)
        if not client.list_artifacts(previous.info.run_id, "figures"):
            return None  # its report never ran: the test metrics are all there is to copy
        copy_artifacts(client, previous.info.run_id, parent_id)
        copy_metric_histories(client, previous, parent_id)
        for tag, point in previous.data.tags.items():  # which grid point each step is
            if tag.startswith(comparison.GRID_STEP_TAG):
                client.set_tag(parent_id, tag, point)
        client.set_tag(parent_id, SOURCE_RUN_TAG, previous.info.run_id)
        return previous.info.run_id
    return None


def copy_artifacts(client: MlflowClient, source_id: str, run_id: str, names: tuple[str, ...] | None = None) -> None:
    """The artifacts of run ``source_id`` (or those ``names`` of them it has) into ``run_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        for item in client.list_artifacts(source_id):
            if names is not None and item.path not in names:
                continue
            local = client.download_artifacts(source_id, item.path, tmp)
            if item.is_dir:
                client.log_artifacts(run_id, local, item.path)
            else:
                client.log_artifact(run_id, local)


def copy_execution(client: MlflowClient, experiment_id: str, source_parent, parent_id: str, tags: dict) -> None:
    """Into the open run ``parent_id``, a copy of ``source_parent``'s data, and under it a copy
    of each of its finished children: params, tags, every metric's history; tagged
    ``bnlab.provenance=copied`` and ``bnlab.source_run``. For a DVC experiment whose stages DVC restored
    from its run cache: the runs of the execution that made those outputs, under this
    experiment's name. Models are not copied (the source runs have them)."""
    _copy_data(client, source_parent, parent_id)
    children = client.search_runs(
        [experiment_id], f"tags.`{PARENT_RUN_ID}` = '{source_parent.info.run_id}' and attributes.status = 'FINISHED'"
    )
    for child in children:
        child_tags = {**_copied_tags(child), **tags, **provenance(COPIED, child.info.run_id), PARENT_RUN_ID: parent_id}
        with owned_run(client, experiment_id, child.info.run_name, child_tags) as copy_id:
            _copy_data(client, child, copy_id)


def _copied_tags(run) -> dict[str, str]:
    return {k: v for k, v in run.data.tags.items() if not k.startswith(NOT_COPIED)}


def _copy_data(client: MlflowClient, source, run_id: str) -> None:
    client.log_batch(run_id, params=[Param(k, v) for k, v in source.data.params.items()])
    copy_metric_histories(client, source, run_id)


def copy_metric_histories(client: MlflowClient, source, run_id: str) -> None:
    """Every metric of run ``source`` into ``run_id`` with its steps (a grid's summary is one
    step per grid point); MLflow's client splits the batch into requests within its limits."""
    history = [m for key in source.data.metrics for m in client.get_metric_history(source.info.run_id, key)]
    client.log_batch(run_id, metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in history])
