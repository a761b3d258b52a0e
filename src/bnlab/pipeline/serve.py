"""`bnlab serve`: one trained model over HTTP, through `mlflow models serve`.

It finds, in the project's store, the run that trained the job's model now in
models/<experiment>/ (by the pipeline key in its pipeline.json), or else the job's newest
FINISHED run, and starts MLflow's scoring server on it with this environment's commands first
on PATH (without that, `mlflow models serve --env-manager local` fails with "exec: uvicorn: not
found" unless the virtual environment is activated). Not a stage: no stage imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bnlab.core import layout
from bnlab.core.settings import ParamsError
from bnlab.experiments.jobs import Job
from bnlab.experiments.params import load_params
from bnlab.pipeline.command import finish

HOST = "127.0.0.1"
PORT = 5001  # `make server`'s tracking server has 5000


class ModelNotFound(LookupError):
    """No finished run of the job holds a model."""


def build_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser(prog="bnlab serve", description="serve a trained model over HTTP "
                                                                  "(mlflow models serve)")
    sub.add_argument("experiment", nargs="?", help="an experiment of params.yaml (default: the first)")
    sub.add_argument("--variant", help="one of the experiment's variants (default: the first)")
    sub.add_argument("--seed", type=int, help="one of the experiment's seeds (default: the first)")
    sub.add_argument("--host", default=HOST, help="address to listen on (default: %(default)s)")
    sub.add_argument("--port", type=int, default=PORT, help="port (default: %(default)s)")
    sub.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return sub


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return finish("serve", lambda: serve(args))


def chosen_job(params, experiment: str | None, variant: str | None, seed: int | None):
    """The job to serve; a name or seed the experiment does not declare is a ParamsError."""
    name = experiment or next(iter(params.experiments))
    declared = params.experiment(name)  # names the choices if `name` is unknown
    variant = variant or next(iter(declared.variants))
    seed = declared.seeds[0] if seed is None else seed
    if variant not in declared.variants:
        raise ParamsError(f"experiment {name!r} has no variant {variant!r}; "
                          f"choose one of {', '.join(declared.variants)}")
    if seed not in declared.seeds:
        raise ParamsError(f"experiment {name!r} has no seed {seed}; choose one of "
                          f"{', '.join(map(str, declared.seeds))}")
    return Job(name, variant, seed, declared.grid_points()[0])  # a grid: its first point


def model_run(client, experiment_id: str, job) -> tuple[str, str]:
    """The run to serve and why: the run that trained the models now in models/<experiment>/
    (found by their pipeline key), else the job's newest FINISHED run."""
    from bnlab.tracking import runs

    meta = layout.models_dir(job.experiment) / layout.PIPELINE_FILE
    if meta.is_file():
        parent = runs.find_parent(client, experiment_id, json.loads(meta.read_text())["pipeline_key"])
        child = parent and runs.find_child(client, experiment_id, parent, job)
        run = child and client.get_run(child)
        if run and run.info.status == "FINISHED":
            # A copy made for a DVC experiment restored from DVC's run cache has no model of
            # its own: the run it copies has.
            copied_from = run.data.tags.get(runs.COPIED_FROM_TAG)
            return copied_from or child, f"the run of the models in {meta.parent}"
    return newest_model_run(client, experiment_id, job), "the newest finished run of the job"


def newest_model_run(client, experiment_id: str, job) -> str:
    runs = client.search_runs(
        [experiment_id],
        f"attributes.run_name = '{job.run_name}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ModelNotFound(f"no finished run of {job.run_name} holds a model: train it first "
                            f"(`make run`, or `dvc repro train@{job.experiment}`)")
    return runs[0].info.run_id


def serve_command(run_id: str, host: str, port: int) -> list[str]:
    mlflow = Path(sys.executable).parent / "mlflow"
    return [str(mlflow), "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local",
            "--host", host, "--port", str(port)]


def serve(args) -> None:
    job = chosen_job(load_params(args.params), args.experiment, args.variant, args.seed)
    from bnlab.tracking import runs

    client, experiment_id = runs.connect()
    run_id, which = model_run(client, experiment_id, job)
    env = {**os.environ, "MLFLOW_TRACKING_URI": runs.store_uri(runs.tracking_uri()),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"serving {job.run_name}, run {run_id} ({which}), at "
          f"http://{args.host}:{args.port}/invocations", flush=True)
    command = serve_command(run_id, args.host, args.port)
    os.execve(command[0], command, env)  # the server replaces this process
