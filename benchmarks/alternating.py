"""What the benchmarks that compare two ways of fitting share: each fit in a fresh process (this
script again, with ``--child <arm>``, printing a JSON line last), the arms alternating round by
round so that a noisy neighbour hurts both alike, an earlier commit's code checked out beside this
tree, and the line that names the machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bnlab.core.cpu import first_processor

ROOT = Path(__file__).resolve().parents[1]


def in_fresh_process(script: str, arm: str, extra: Sequence[str] = (), src: Path | None = None) -> dict:
    """``script --child arm`` run from the project's root; ``src``: the bnlab it imports (first on
    PYTHONPATH, ahead of the installed one), else the installed one."""
    env = {**os.environ, "PYTHONPATH": str(src), "TF_CPP_MIN_LOG_LEVEL": "3"} if src else None
    command = [sys.executable, script, "--child", arm, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def earlier_tree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary git worktree that reads this tree's prepared
    splits; removed on leaving."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "earlier"
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), revision], cwd=ROOT, check=True)
        try:
            (folder / "data").mkdir(exist_ok=True)
            os.symlink(ROOT / "data" / "prepared", folder / "data" / "prepared")
            yield folder
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False)


def store_in(folder: Path, experiment: str) -> tuple[str, str]:
    """The SQLite store in ``folder`` and the id of its ``experiment`` (made unless there
    already), whose artifacts go in that folder too: a store named by URI otherwise puts them in
    ``./mlruns`` of wherever the stage runs, the checkout, where nothing removes them."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found:
        return uri, found.experiment_id
    return uri, client.create_experiment(experiment, artifact_location=(folder / "artifacts").as_uri())


def scratch_store(prefix: str) -> tuple[Path, str]:
    """A throw-away MLflow store (:func:`store_in`, the project's experiment) in a new temporary
    folder, and its URI."""
    from bnlab.tracking.store import experiment_name

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    return folder, store_in(folder, experiment_name())[0]


def remove_scratch(folder: Path, wait_s: float = 30.0) -> None:
    """Remove a scratch folder after a stage: its workers' forkserver outlives the stage for a
    moment, removing its own staging folder of the XLA program cache inside it."""
    deadline = time.monotonic() + wait_s
    while True:
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"could not remove {folder}")
        time.sleep(0.5)


def alternate(
    script: str, arms: list[str], repeats: int, describe: Callable[[dict], str], extra: Sequence[str] = ()
) -> dict[str, list[dict]]:
    """``repeats`` rounds, each measuring every arm once in a fresh process (``extra``: more
    arguments for it); one line per fit."""
    found = {arm: [] for arm in arms}
    for round_ in range(1, repeats + 1):
        for arm in arms:
            found[arm].append(in_fresh_process(script, arm, extra))
            print(f"run {round_} {arm:9s} {describe(found[arm][-1])}", flush=True)
    return found


def cpu_name() -> str:
    """The CPU's model name, vendor, family and model from /proc/cpuinfo (or the platform's word)."""
    fields = first_processor()
    if not fields:
        return platform.processor() or "?"
    return (
        f"{fields.get('model name', '?')} ({fields.get('vendor_id', '?')} family {fields.get('cpu family', '?')} "
        f"model {fields.get('model', '?')})"
    )


def machine() -> str:
    return f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_speedup(against: str, walls: dict[str, list[float]], cpus: dict[str, list[dict]] | None = None) -> None:
    """The table of an earlier commit's stage against this tree's (``walls`` by arm, "earlier"
    and "this tree", round by round), the speed-up the median of the rounds' ratios; and, where
    given, each arm's median user and sys CPU seconds."""
    ratios = [old / new for old, new in zip(walls["earlier"], walls["this tree"])]
    print(f"| {against} s (median) | this tree s (median) | speed-up (median of rounds; least-most) |")
    print("|---|---|---|")
    print(
        f"| {statistics.median(walls['earlier']):.1f} | {statistics.median(walls['this tree']):.1f} | "
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
    )
    if cpus:
        print("\nCPU seconds of the stage's process (medians)\n\n| arm | user | sys |\n|---|---|---|")
        for arm, found in cpus.items():
            user, sys_ = (statistics.median(c[part] for c in found) for part in ("user", "sys"))
            print(f"| {arm} | {user:.1f} | {sys_:.1f} |")
