"""The set-up `make run` and `make test` start with (`make .venv/.installed`: a venv from
requirements.lock and the project installed into it), at an earlier commit against this tree,
each in its own git worktree from no venv at all, alternating.

    python benchmarks/setup_time.py --against <commit> [--repeat 3]

Both install the same lock from the same package index; what differs is the Makefile's recipe.
The package caches stay as the machine keeps them (uv's warm after its first round; pip's as its
configuration leaves it). The speed-up is the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from alternating import earlier_tree, machine

STAMP = ".venv/.installed"  # the Makefile's target for the set-up


def set_up_seconds(tree: Path) -> float:
    """Wall seconds of the Makefile's set-up in ``tree``, from no venv."""
    shutil.rmtree(tree / ".venv", ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(["make", "--no-print-directory", STAMP], cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the earlier commit (its Makefile's recipe)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine(), flush=True)
    seconds: dict[str, list[float]] = {"earlier": [], "this tree": []}
    with earlier_tree(args.against) as earlier, earlier_tree("HEAD") as this:
        for round_ in range(1, args.repeat + 1):
            for arm, tree in (("earlier", earlier), ("this tree", this)):
                seconds[arm].append(set_up_seconds(tree))
                print(f"round {round_} {arm:9s} {seconds[arm][-1]:6.1f} s", flush=True)
    ratios = [a / b for a, b in zip(seconds["earlier"], seconds["this tree"], strict=True)]
    for arm, values in seconds.items():
        print(f"{arm:9s} median {statistics.median(values):6.1f} s, best {min(values):6.1f} s")
    print(f"speed-up (median of the rounds' ratios): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
