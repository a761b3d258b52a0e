"""Stage `split`: data/raw/mnist.npz → data/prepared/{train,val,test}.npz."""

from pathlib import Path

from bnlab import data, layout
from bnlab.config import load_params


def run(params_path: str = "params.yaml", source: Path = layout.RAW, out_dir: Path = layout.PREPARED) -> None:
    settings = load_params(params_path).split
    mnist = data.mnist_from_npz(source)
    data.check_layout(mnist, origin=str(source))
    parts = data.split_mnist(mnist, settings.val_size, settings.seed, settings.method)
    for name, arrays in parts.items():
        data.save_npz(out_dir / f"{name}.npz", arrays)
    sizes = ", ".join(f"{name} {len(arrays['y'])}" for name, arrays in parts.items())
    print(f"wrote {out_dir}/{{train,val,test}}.npz: {sizes} ({settings.method}, seed {settings.seed})")
