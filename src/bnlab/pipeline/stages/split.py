"""Stage `split`: data/raw/mnist.npz → data/prepared/{train,val,test}.npz."""

import sys
from pathlib import Path

from bnlab.core import layout
from bnlab.data.mnist import check_layout, mnist_from_npz, save_npz
from bnlab.data.splits import split_mnist
from bnlab.experiments.params import load_params
from bnlab.pipeline.command import stage_main


def run(params_path: str = "params.yaml", source: Path = layout.RAW, out_dir: Path = layout.PREPARED) -> None:
    settings = load_params(params_path).split
    mnist = mnist_from_npz(source)
    check_layout(mnist, origin=str(source))
    parts = split_mnist(mnist, settings.val_size, settings.seed, settings.method)
    for name, arrays in parts.items():
        save_npz(out_dir / layout.split_file(name).name, arrays)
    sizes = ", ".join(f"{name} {len(arrays['y'])}" for name, arrays in parts.items())
    print(f"wrote {out_dir}/{{{','.join(parts)}}}.npz: {sizes} ({settings.method}, seed {settings.seed})")


def main(argv: list[str] | None = None) -> int:
    return stage_main("split", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
