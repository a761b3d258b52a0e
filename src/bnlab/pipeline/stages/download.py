"""Stage `download`: verified MNIST from the first source that works → data/raw/mnist.npz."""

import sys
from pathlib import Path

from bnlab.core import layout
from bnlab.data.mnist import save_npz
from bnlab.data.sources import fetch_mnist
from bnlab.experiments.params import load_params
from bnlab.pipeline.command import stage_main


def run(params_path: str = "params.yaml", output: Path = layout.RAW) -> None:
    params = load_params(params_path)
    mnist, source = fetch_mnist(params.data)
    save_npz(output, mnist.arrays())
    print(f"wrote {output} ({len(mnist.y_train)} train, {len(mnist.y_test)} test) from {source}")


def main(argv: list[str] | None = None) -> int:
    return stage_main("download", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
