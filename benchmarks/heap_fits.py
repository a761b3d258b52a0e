"""One network's fits with glibc's heap set as the jobs set it (bnlab.execution.heap) against
glibc's defaults: each arm a fresh process with three fits of the network's first job, exactly
as a train worker fits it (benchmarks/fit_profile.py's ``fitting``), the arms alternating. The
first fit of a process reads or compiles its programs (the project's XLA program cache); the
next two are the warm fits compared.

    python benchmarks/heap_fits.py [--network ioffe2015] [--rounds 2]   # needs `dvc repro split`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from alternating import machine

ARMS = ("heap", "glibc defaults")
FITS = 3


def child(network: str, arm: str) -> None:
    if arm == "heap":
        from bnlab.execution import heap

        assert heap.keep_large_buffers(), "glibc refused the heap settings"
    from fit_profile import fitting

    with fitting(network) as (fit_once, _, _):
        print(json.dumps([fit_once()[0] for _ in range(FITS)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ioffe2015")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=ARMS)
    args = parser.parse_args()
    if args.child:
        return child(args.network, args.child)
    warm: dict[str, list[float]] = {arm: [] for arm in ARMS}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for round_ in range(args.rounds):
        for arm in ARMS:
            command = [sys.executable, __file__, "--network", args.network, "--child", arm]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            walls = json.loads(done.stdout.strip().splitlines()[-1])
            warm[arm] += walls[1:]
            print(f"round {round_ + 1}: {arm:14s} fits {', '.join(f'{w:.2f}' for w in walls)} s", flush=True)
    ratio = statistics.median(warm["glibc defaults"]) / statistics.median(warm["heap"])
    print(f"\n{args.network}, warm fits; {machine()}")
    for arm in ARMS:
        print(f"{arm}: median {statistics.median(warm[arm]):.2f} s ({min(warm[arm]):.2f}-{max(warm[arm]):.2f})")
    print(f"the heap setting: {ratio:.2f}x as fast as glibc's defaults")


if __name__ == "__main__":
    main()
