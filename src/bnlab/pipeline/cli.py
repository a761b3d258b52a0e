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
    "summary": "print the experiments' comparison tables and how to open the MLflow UI",
    "pipeline": "run an experiment's pipeline (dvc repro / dvc exp run) with overrides",
    "serve": "serve a trained model over HTTP (mlflow models serve)",
}


def _download(argv):
    from bnlab.pipeline.stages import download

    return download.main(argv)


def _split(argv):
    from bnlab.pipeline.stages import split

    return split.main(argv)


def _train(argv):
    from bnlab.pipeline.stages import train

    return train.main(argv)


def _evaluate(argv):
    from bnlab.pipeline.stages import evaluate

    return evaluate.main(argv)


def _report(argv):
    from bnlab.pipeline.stages import report

    return report.main(argv)


def _summary(argv):
    from bnlab.pipeline import summary

    return summary.main(argv)


def _pipeline(argv):
    from bnlab.pipeline import mlflow_run

    return mlflow_run.main(argv)


def _serve(argv):
    from bnlab.pipeline import serve

    return serve.main(argv)


DISPATCH = {"download": _download, "split": _split, "train": _train, "evaluate": _evaluate,
            "report": _report, "summary": _summary, "pipeline": _pipeline, "serve": _serve}


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10}{text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="bnlab", description="Does batch normalization help? A reproducible MNIST laboratory.",
        epilog=f"commands:\n{listing}\n\n`bnlab COMMAND --help` tells more.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return DISPATCH[args.command](args.args)


if __name__ == "__main__":
    sys.exit(main())
