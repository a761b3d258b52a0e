"""`bnlab <command>`: the pipeline's stages (what dvc.yaml runs, as
``python -m bnlab.pipeline.stages.<stage>``) and the conveniences around them.

Each command's module is imported only when that command runs: `bnlab download` never loads
MLflow or TensorFlow.
"""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "download": "download verified MNIST to data/raw/mnist.npz",
    "split": "split it into data/prepared/{train,val,test}.npz",
    "train": "train every job of an experiment into models/<experiment>/, each an MLflow run",
    "evaluate": "evaluate an experiment's models on the test set into eval/<experiment>/",
    "report": "statistics, tables and figures of an experiment into reports/<experiment>/",
    "results": "every experiment's reports into docs/results.md: tables, verdicts, figures",
    "summary": "print the experiments' comparison tables and how to open the MLflow UI",
    "pipeline": "run an experiment's pipeline (dvc repro / dvc exp run) with overrides",
    "serve": "serve a trained model over HTTP (mlflow models serve)",
}


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10}{text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="bnlab",
        description="Does batch normalization help? A reproducible MNIST laboratory.",
        epilog=f"commands:\n{listing}\n\n`bnlab COMMAND --help` tells more.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # Only the chosen command's module is imported (stated, not looked up by name, so that the
    # import reader of bnlab.core.imports sees every one).
    if args.command == "download":
        from bnlab.pipeline.stages import download as command
    elif args.command == "split":
        from bnlab.pipeline.stages import split as command
    elif args.command == "train":
        from bnlab.pipeline.stages import train as command
    elif args.command == "evaluate":
        from bnlab.pipeline.stages import evaluate as command
    elif args.command == "report":
        from bnlab.pipeline.stages import report as command
    elif args.command == "results":
        from bnlab.pipeline.stages import results as command
    elif args.command == "summary":
        from bnlab.pipeline import summary as command
    elif args.command == "pipeline":
        from bnlab.pipeline import mlflow_run as command
    else:
        from bnlab.pipeline import serve as command
    return command.main(args.args)


if __name__ == "__main__":
    sys.exit(main())
