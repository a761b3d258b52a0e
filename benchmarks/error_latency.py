"""How fast bad input is refused: `bnlab <stage>` with a negative epoch count, and
`bnlab train` with a corrupt data file, against the interpreter's own start-up
(`python -c pass`) in the same run.

    python benchmarks/error_latency.py [--repeats 5]   # from the project root
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STAGES = ["split", "train notebook", "evaluate notebook", "report notebook"]


def timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["experiments"]["notebook"]["model"]["epochs"] = -1
    bnlab = str(Path(sys.executable).parent / "bnlab")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "params.yaml").write_text(yaml.safe_dump(params))
        baseline = statistics.median(
            timed([sys.executable, "-c", "pass"], Path(folder))[0] for _ in range(args.repeats)
        )
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"| command | s (median of {args.repeats}) | × python -c pass |\n|---|---|---|")
        print(f"| python -c pass | {baseline:.2f} | 1.0 |")
        for stage in STAGES:
            runs = [timed([bnlab, *stage.split()], Path(folder)) for _ in range(args.repeats)]
            assert all(done.returncode == 2 for _, done in runs), runs[0][1].stderr
            seconds = statistics.median(s for s, _ in runs)
            print(f"| bnlab {stage} (epochs: -1) | {seconds:.2f} | {seconds / baseline:.1f} |")
        (Path(folder) / "params.yaml").write_text(Path("params.yaml").read_text())
        prepared = Path(folder) / "data/prepared"
        prepared.mkdir(parents=True)
        (prepared / "train.npz").write_bytes(b"not an npz file")
        runs = [timed([bnlab, "train", "notebook"], Path(folder)) for _ in range(args.repeats)]
        assert all(done.returncode == 1 for _, done in runs), runs[0][1].stderr
        seconds = statistics.median(s for s, _ in runs)
        print(f"| bnlab train notebook (corrupt train.npz) | {seconds:.2f} | {seconds / baseline:.1f} |")


if __name__ == "__main__":
    main()
