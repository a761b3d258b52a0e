"""`bnlab serve`: a registered model over HTTP, through `mlflow models serve`.

It serves ``models:/bnlab-<experiment>-<variant>@champion`` (the seed with the best validation
accuracy) or ``@seed-<n>`` from MLflow's model registry, which the report stage fills
(:mod:`bnlab.tracking.registry`), and starts MLflow's scoring server with this environment's
commands first on PATH (without that, `mlflow models serve --env-manager local` fails with
"exec: uvicorn: not found" unless the virtual environment is activated). Not a stage: no stage
imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bnlab.core.settings import ParamsError
from bnlab.experiments.params import load_params
from bnlab.pipeline.command import finish

HOST = "127.0.0.1"
PORT = 5001  # `make server`'s tracking server has 5000


class ModelNotFound(LookupError):
    """The registry has no such model or alias."""


def build_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser(
        prog="bnlab serve", description="serve a registered model over HTTP (mlflow models serve)"
    )
    sub.add_argument("experiment", nargs="?", help="an experiment of params.yaml (default: the first)")
    sub.add_argument("--variant", help="one of the experiment's variants (default: the first)")
    sub.add_argument(
        "--seed",
        type=int,
        help="one of the experiment's seeds (default: the champion, the seed with the best validation accuracy)",
    )
    sub.add_argument("--host", default=HOST, help="address to listen on (default: %(default)s)")
    sub.add_argument("--port", type=int, default=PORT, help="port (default: %(default)s)")
    sub.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return sub


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return finish("serve", lambda: serve(args))


def chosen_model(params, name: str, variant: str | None, seed: int | None) -> str:
    """The registry URI to serve; a name or seed the experiment does not declare, or a grid
    experiment (not registered: a model per grid point), is a ParamsError, before MLflow loads."""
    declared = params.experiment(name)  # names the choices if `name` is unknown
    variant = variant or next(iter(declared.variants))
    if variant not in declared.variants:
        raise ParamsError(
            f"experiment {name!r} has no variant {variant!r}; choose one of {', '.join(declared.variants)}"
        )
    if seed is not None and seed not in declared.seeds:
        raise ParamsError(
            f"experiment {name!r} has no seed {seed}; choose one of {', '.join(map(str, declared.seeds))}"
        )
    if declared.grid:
        raise ParamsError(
            f"experiment {name!r} has a grid, so its models are not registered (one per grid "
            f"point): serve one of its runs with `mlflow models serve -m runs:/<run id>/model`"
        )
    from bnlab.tracking import registry

    return registry.model_uri(name, variant, registry.CHAMPION if seed is None else registry.seed_alias(seed))


def registered_version(client, uri: str, experiment: str) -> str:
    """The version ``uri`` (``models:/<name>@<alias>``) points at, or ModelNotFound saying how
    to register it."""
    from mlflow.exceptions import MlflowException

    name, alias = uri.removeprefix("models:/").split("@")
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:  # RESOURCE_DOES_NOT_EXIST, for a missing model and alias alike
        raise ModelNotFound(
            f"the registry has no {uri}: the report stage registers it (`make run`, or `dvc repro report@{experiment}`)"
        ) from None


def serve_command(uri: str, host: str, port: int) -> list[str]:
    mlflow = Path(sys.executable).parent / "mlflow"
    return [str(mlflow), "models", "serve", "-m", uri, "--env-manager", "local", "--host", host, "--port", str(port)]


def serve(args) -> None:
    params = load_params(args.params)
    experiment = args.experiment or next(iter(params.experiments))
    uri = chosen_model(params, experiment, args.variant, args.seed)
    from bnlab.tracking import runs

    client, _ = runs.connect()
    version = registered_version(client, uri, experiment)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": runs.store_uri(runs.tracking_uri()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    print(f"serving {uri} (version {version}) at http://{args.host}:{args.port}/invocations", flush=True)
    command = serve_command(uri, args.host, args.port)
    os.execve(command[0], command, env)  # the server replaces this process
