"""`bnlab <command>`: the pipeline's stages (what dvc.yaml runs) and a few conveniences.

Expected failures (bad params, bad data, unreachable sources or tracking server, unwritable
outputs) end with one message on stderr that names the problem and a non-zero exit, not a
traceback. SIGTERM is handled like Ctrl-C, so MLflow runs end KILLED and no partial output
is kept.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys

STAGES = {
    "download": "download verified MNIST to data/raw/mnist.npz",
    "split": "split it into data/prepared/{train,val,test}.npz",
}
EXPERIMENT_STAGES = {  # one DVC stage per experiment: train@notebook, ...
    "train": "train every job of an experiment into models/<experiment>/, each an MLflow run",
    "evaluate": "evaluate an experiment's models on the test set into eval/<experiment>/",
    "report": "statistics, tables and figures of an experiment into reports/<experiment>/",
}
# Conveniences that are no stage: loaded by name (importlib), so no stage's deps include them.
TOOLS = {"serve": "bnlab.model_server"}
EXIT_PARAMS, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def expected_errors() -> tuple[type[BaseException], ...]:
    from bnlab.atomic import OutputError
    from bnlab.data import DataError  # also every source failing (sources.AllSourcesFailed)

    errors = [DataError, OutputError, FileNotFoundError]
    for module, names in (("bnlab.workers", ("WorkersError",)), ("bnlab.job_runner", ("JobFailed",))):
        if module in sys.modules:  # only the train stage imports them
            errors += [getattr(sys.modules[module], name) for name in names]
    if "bnlab.store" in sys.modules:  # only stages that track import it
        errors.append(sys.modules["bnlab.store"].TrackingError)
    if "bnlab.model_server" in sys.modules:
        errors.append(sys.modules["bnlab.model_server"].ModelNotFound)
    if "mlflow" in sys.modules:
        errors.append(sys.modules["mlflow"].exceptions.MlflowException)
    return tuple(errors)


def describe(exc: BaseException) -> str:
    """One readable message; MLflow's own errors get the store's URI in front."""
    store = sys.modules.get("bnlab.store")  # only stages that track import it (and MLflow)
    if store is None:
        return str(exc)
    if "mlflow" in sys.modules and isinstance(exc, sys.modules["mlflow"].exceptions.MlflowException):
        lines = (exc.message or str(exc)).strip().splitlines()
        # A database driver's own line says what went wrong ("(sqlite3.OperationalError)
        # database or disk is full"); MLflow's first line may only say where.
        driver = [line.strip() for line in lines if re.match(r"\s*\(\w+(\.\w+)+\) ", line)]
        first = driver[0] if driver else lines[0] if lines else type(exc).__name__
        return store.redact_text(f"MLflow tracking store {store.redact(store.tracking_uri())} failed: {first}")
    return store.redact_text(str(exc))  # no password in any message


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnlab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in {**STAGES, **EXPERIMENT_STAGES}.items():
        sub = commands.add_parser(name, help=help_text)
        if name in EXPERIMENT_STAGES:
            sub.add_argument("experiment", help="an experiment declared in params.yaml")
        sub.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    summary = commands.add_parser("summary", help="print the experiments' comparison tables and how to open the MLflow UI")
    summary.add_argument("experiments", nargs="*", help="experiments to print (default: every one in params.yaml)")
    from bnlab.pipeline import add_pipeline_parser

    add_pipeline_parser(commands)
    for module in TOOLS.values():
        importlib.import_module(module).add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    from bnlab.config import ParamsError, load_params

    try:
        if args.command == "summary":
            from bnlab.pipeline import print_summary

            return print_summary(args.experiments)
        if args.command == "pipeline":
            from bnlab.pipeline import run_pipeline

            return run_pipeline(args)
        if args.command in TOOLS:
            return importlib.import_module(TOOLS[args.command]).run(args)
        # Params first: a bad one is refused in well under a second, before the stage module
        # imports TensorFlow and MLflow (seconds).
        params = load_params(args.params)
        if args.command in EXPERIMENT_STAGES:
            params.experiment(args.experiment)
        stage = importlib.import_module(f"bnlab.stages.{args.command}")
        if args.command in EXPERIMENT_STAGES:
            stage.run(args.experiment, args.params)
        else:
            stage.run(args.params)
    except ParamsError as exc:
        print(f"bnlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    except KeyboardInterrupt:
        print(f"bnlab {args.command}: interrupted; no output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except expected_errors() as exc:
        print(f"bnlab {args.command}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # a full disk outside the outputs: MLflow copying an artifact
        from bnlab.atomic import is_write_error, write_error

        if not is_write_error(exc):
            raise
        print(f"bnlab {args.command}: error: {write_error('an output', exc)}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
