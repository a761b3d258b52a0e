"""`bnlab <stage>`: the entry point DVC and MLproject call.

Expected failures (bad params, bad data, unreachable sources, unwritable outputs) end with one
line on stderr that names the problem and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = {
    "download": "download verified MNIST to data/raw/mnist.npz",
    "split": "split it into data/prepared/{train,val,test}.npz",
}
EXIT_PARAMS, EXIT_FAILED = 2, 1


def expected_errors() -> tuple[type[BaseException], ...]:
    from bnlab.atomic import OutputError
    from bnlab.data import DataError
    from bnlab.sources import AllSourcesFailed

    return (DataError, AllSourcesFailed, OutputError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnlab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in STAGES.items():
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bnlab.config import ParamsError

    stage = importlib.import_module(f"bnlab.stages.{args.command}")
    try:
        stage.run(args.params)
    except ParamsError as exc:
        print(f"bnlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    except expected_errors() as exc:
        print(f"bnlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
