"""Fit one job's model into its open run: the estimator built from the validated settings, its
probes, and a fit whose params, datasets, per-epoch and probe metrics and served model go into
the run as the fit goes. The run's lifecycle is its caller's (:mod:`bnlab.execution.job`)."""

from __future__ import annotations

import time

from bnlab.data.splits import flat_pixels
from bnlab.experiments.jobs import Job, job_probes, job_settings
from bnlab.experiments.params import ExperimentParams, Params
from bnlab.ml.estimator import KerasMLPClassifier
from bnlab.ml.geometry import GeometryProbe
from bnlab.ml.init_gradients import InitGradientProbe
from bnlab.ml.probes import ProbeRecorder
from bnlab.ml.sharpness import SharpnessProbe
from bnlab.ml.weight_norms import WeightNormProbe
from bnlab.tracking import logged
from bnlab.tracking.job_runs import job_params, log_served_model_of

PIXEL_SCALE = 1 / 255  # inside the network, so the logged model takes raw pixel rows


def make_estimator(experiment: ExperimentParams, job: Job, callbacks=None) -> KerasMLPClassifier:
    """The job's estimator, built from the validated settings as they are."""
    return KerasMLPClassifier(
        **job_settings(experiment, job).estimator_kwargs(),
        random_state=job.seed,
        rescale=PIXEL_SCALE,
        callbacks=callbacks,
    )


def make_probes(
    experiment: ExperimentParams, estimator: KerasMLPClassifier, splits: dict, on_record=None
) -> ProbeRecorder | None:
    """The experiment's probes for this estimator, or None when it declares none."""
    if experiment.probes is None:
        return None
    (x_val, y_val), (x_test, y_test) = splits["validation"], splits["test"]
    return ProbeRecorder(
        experiment.probes.every_steps,
        (flat_pixels(x_val), y_val),
        (flat_pixels(x_test), y_test),
        n_hidden=len(estimator.layer_units()),
        probe_images=experiment.probes.images,
        unit=experiment.probes.unit,
        batch_size=estimator.batch_size,
        on_record=on_record,
    )


def make_geometry(experiment: ExperimentParams, estimator: KerasMLPClassifier, on_record=None) -> GeometryProbe | None:
    """The experiment's landscape and covariate-shift probe for this estimator, or None."""
    geometry = experiment.probes and experiment.probes.geometry
    if geometry is None:
        return None
    return GeometryProbe(
        geometry.steps,
        estimator.learning_rate,
        geometry.etas.multiples(),
        geometry.directions,
        n_hidden=len(estimator.layer_units()),
        seed=estimator.random_state,
        on_record=on_record,
    )


def make_init_gradients(
    experiment: ExperimentParams, estimator: KerasMLPClassifier, on_record=None
) -> InitGradientProbe | None:
    """The experiment's measurement of the gradients at initialization, or None."""
    if not (experiment.probes and experiment.probes.init_gradients):
        return None
    return InitGradientProbe(len(estimator.layer_units()), on_record=on_record)


def make_weight_norms(
    experiment: ExperimentParams, estimator: KerasMLPClassifier, n_train: int, on_record=None
) -> WeightNormProbe | None:
    """The experiment's record of the hidden kernels' norms and angular updates, or None."""
    if not (experiment.probes and experiment.probes.weight_norms):
        return None
    steps = experiment.probes.weight_norm_steps(estimator.total_steps(n_train))
    return WeightNormProbe(steps, len(estimator.layer_units()), on_record=on_record)


def make_sharpness(
    experiment: ExperimentParams, estimator: KerasMLPClassifier, train: tuple, on_record=None
) -> SharpnessProbe | None:
    """The experiment's λ_max probe on its first training images, or None."""
    sharpness = experiment.probes and experiment.probes.sharpness
    if sharpness is None:
        return None
    x, y = train
    steps = experiment.probes.sharpness_steps(estimator.total_steps(len(y)))
    return SharpnessProbe(
        steps, flat_pixels(x[: sharpness.images]), y[: sharpness.images], estimator.random_state, on_record
    )


def training_split(experiment: ExperimentParams, splits: dict) -> tuple:
    """The images a job trains on: the training split's first ``train_images`` (all of it when
    unset)."""
    x, y = splits["train"]
    n = experiment.train_images or len(y)
    return x[:n], y[:n]


def fit_into_run(
    client, store: str, run_id: str, params: Params, job: Job, splits: dict, sources: dict[str, str]
) -> tuple[KerasMLPClassifier, list]:
    """Fit the job's model; params, datasets, each epoch's metrics (and its time per optimizer
    step) and probe metrics within seconds of their measuring, the system's CPU and memory
    while it fits, the fit's time and, but for a selection job's (never tested or served), the
    served model go to run ``run_id`` of the store at ``store``."""
    experiment = params.experiment(job.experiment)
    (x_train, y_train), (x_val, y_val) = training_split(experiment, splits), splits["validation"]
    estimator = make_estimator(experiment, job)
    epochs, probe_log, geometry_log, init_log, norm_log, sharpness_log = writers = (
        logged.EpochLogger(store, run_id),
        logged.ProbeLogger(store, run_id),
        logged.GeometryLogger(store, run_id),
        logged.InitGradientLogger(store, run_id),
        logged.WeightNormLogger(store, run_id),
        logged.SharpnessLogger(store, run_id),
    )
    probes = []
    if job_probes(experiment, job) is not None:  # a selection job needs its validation score only
        probes = [
            probe
            for probe in (
                make_probes(experiment, estimator, splits, probe_log),
                make_geometry(experiment, estimator, geometry_log),
                make_init_gradients(experiment, estimator, init_log),
                make_weight_norms(experiment, estimator, len(y_train), norm_log),
                make_sharpness(experiment, estimator, (x_train, y_train), sharpness_log),
            )
            if probe is not None
        ]
    estimator.set_params(callbacks=[epochs, *probes])
    logged.log_params(client, run_id, job_params(params, estimator, len(y_train), len(y_val)))
    used = {**splits, "train": (x_train, y_train)}
    logged.log_datasets(client, run_id, {k: used[k] for k in sources}, sources)
    started = time.perf_counter()
    try:
        with logged.system_metrics(store, run_id):
            estimator.fit(flat_pixels(x_train), y_train, validation_data=(flat_pixels(x_val), y_val))
    finally:  # a fit that failed keeps the metrics it measured
        for writer in writers:
            writer.flush()
    logged.log_metrics(client, run_id, {"fit_seconds": time.perf_counter() - started})
    estimator.set_params(callbacks=None)  # the loggers belong to this run, not the model
    log_served_model_of(client, run_id, job, estimator)
    return estimator, probes
