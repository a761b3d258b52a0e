"""Stage `download`: verified MNIST from the first source that works → data/raw/mnist.npz."""

from pathlib import Path

from bnlab import data, layout
from bnlab.config import load_params
from bnlab.sources import fetch_mnist


def run(params_path: str = "params.yaml", output: Path = layout.RAW) -> None:
    params = load_params(params_path)
    mnist, source = fetch_mnist(params.data)
    data.save_npz(output, mnist.arrays())
    print(f"wrote {output} ({len(mnist.y_train)} train, {len(mnist.y_test)} test) from {source}")
