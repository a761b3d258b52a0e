"""`bnlab <command>`: the pipeline's stages (what dvc.yaml runs) and a few conveniences.

Expected failures (bad params, bad data, unreachable sources or tracking server, unwritable
outputs) end with one message on stderr that names the problem and a non-zero exit, not a
traceback. SIGTERM is handled like Ctrl-C, so MLflow runs end KILLED and no partial output
is kept.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

STAGES = {
    "download": "download verified MNIST to data/raw/mnist.npz",
    "split": "split it into data/prepared/{train,val,test}.npz",
    "train": "train every (variant, seed) model into models/, each an MLflow run",
    "evaluate": "evaluate the models on the test set into eval/",
    "report": "figures, comparison table and statistics into reports/",
}
EXIT_PARAMS, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def expected_errors() -> tuple[type[BaseException], ...]:
    from bnlab.atomic import OutputError
    from bnlab.data import DataError
    from bnlab.sources import AllSourcesFailed

    errors = [DataError, AllSourcesFailed, OutputError, FileNotFoundError]
    if "bnlab.tracking" in sys.modules:  # only stages that track import MLflow
        errors.append(sys.modules["bnlab.tracking"].TrackingError)
        errors.append(sys.modules["mlflow"].exceptions.MlflowException)
    return tuple(errors)


def describe(exc: BaseException) -> str:
    """One readable message; MLflow's own errors get the store's URI in front."""
    if "mlflow" in sys.modules and isinstance(exc, sys.modules["mlflow"].exceptions.MlflowException):
        from bnlab.tracking import tracking_uri

        lines = (exc.message or str(exc)).strip().splitlines()
        return f"MLflow tracking store {tracking_uri()} failed: {lines[0] if lines else type(exc).__name__}"
    return str(exc)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnlab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in STAGES.items():
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    commands.add_parser("summary", help="print the comparison table and how to open the MLflow UI")
    from bnlab.pipeline import add_pipeline_parser

    add_pipeline_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    from bnlab.config import ParamsError

    try:
        if args.command == "summary":
            from bnlab.pipeline import print_summary

            return print_summary()
        if args.command == "pipeline":
            from bnlab.pipeline import run_pipeline

            return run_pipeline(args)
        importlib.import_module(f"bnlab.stages.{args.command}").run(args.params)
    except ParamsError as exc:
        print(f"bnlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    except KeyboardInterrupt:
        print(f"bnlab {args.command}: interrupted; no output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except expected_errors() as exc:
        print(f"bnlab {args.command}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
