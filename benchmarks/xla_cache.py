"""Compile once per machine: a process's first fit with the XLA program cache warm, against its
second fit (everything compiled and traced), and the same without the cache.

    python benchmarks/xla_cache.py [--networks notebook ioffe2015 small_batches] [--repeats 3]

Per network: one process fills a fresh cache (its first fit compiles and writes every program);
then, in alternating fresh processes, two fits each with the cache ("cached") and without it
("off"), each process first importing what a train worker's forkserver imports. A process's
first fit over its second is what a fresh worker pays for a configuration: the ratio is taken
inside one process, so a busy machine moves both fits alike. Fits run as a train worker runs
them (benchmarks/fit_profile.py's ``fitting``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from alternating import machine
from fit_profile import NETWORKS, ROOT, fitting


def child(network: str) -> dict:
    import bnlab.execution.worker_image  # noqa: F401  (what a train worker holds before its first job)

    with fitting(network) as (fit_once, _, _):
        first, _ = fit_once()
        second, _ = fit_once()
    return {"first": first, "second": second}


def in_process(network: str, cache: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", network],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BNLAB_XLA_CACHE": cache},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode:
        raise SystemExit(f"{network}: the fitting process failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(network: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp, "xla-cache"))
        fill = in_process(network, cache)
        entries = sorted(Path(cache).iterdir())
        arms = {"cached": [], "off": []}
        for round_ in range(repeats):
            for arm in arms:
                arms[arm].append(in_process(network, cache if arm == "cached" else "off"))
                print(f"{network} run {round_ + 1} {arm:6s} {arms[arm][-1]}", flush=True)
        return {
            "fill": fill,
            "entries": len(entries),
            "megabytes": sum(path.stat().st_size for path in entries) / 1e6,
            "written_later": len(list(Path(cache).iterdir())) - len(entries),  # 0: every program was found
            **arms,
        }


def median(runs: list[dict], fit: str) -> float:
    return statistics.median(run[fit] for run in runs)


def ratio(runs: list[dict]) -> str:
    """First fit over second, process by process: the median (least–most)."""
    ratios = [run["first"] / run["second"] for run in runs]
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def table(results: dict) -> str:
    rows = [
        "| network | cache entries (MB) | second fit s | first fit, cache warm s | ratio "
        "| first fit, no cache s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for network, found in results.items():
        rows.append(
            f"| {network} | {found['entries']} ({found['megabytes']:.1f}) | {median(found['cached'], 'second'):.2f} "
            f"| {median(found['cached'], 'first'):.2f} | {ratio(found['cached'])} "
            f"| {median(found['off'], 'first'):.2f} | {ratio(found['off'])} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=sorted(NETWORKS))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    results = {network: measure(network, args.repeats) for network in args.networks}
    print(f"\n{machine()}\n")
    print(table(results))
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
