"""Test helpers: small generated MNIST-like data, the project's files, subprocesses with the
project's environment, and throwaway copies of the project (git + DVC) to run them in."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from bnlab.data.mnist import Mnist, array_fingerprint

PROJECT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def make_mnist(n_train: int = 600, n_test: int = 200, seed: int = 0) -> Mnist:
    """Tiny, learnable MNIST look-alike: each digit is a fixed random prototype plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(10, 28, 28))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 10  # every class equally often
        rng.shuffle(y)
        noise = rng.integers(-60, 61, size=(n, 28, 28))
        x = np.clip(prototypes[y] + noise, 0, 255)
        return x.astype(np.uint8), y.astype(np.uint8)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Mnist(x_train, y_train, x_test, y_test)


def fingerprints(mnist: Mnist) -> dict[str, str]:
    return {key: array_fingerprint(value) for key, value in mnist.arrays().items()}


def project_env() -> dict[str, str]:
    """Environment for subprocesses: this venv's commands first on PATH, these helpers on
    PYTHONPATH (for code run with `python -c`), quiet TensorFlow."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT / "tests"), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Jobs one at a time: test files already run two at once on the two cores, and on tiny data
    # a worker's start-up (importing TensorFlow) costs more than its jobs. test_workers.py and
    # test_dask.py set it themselves.
    env.setdefault("BNLAB_WORKERS", "1")
    return env


def store_env(uri: str | None = None) -> dict[str, str]:
    """:func:`project_env` without MLflow's variables: the project's default store
    (sqlite:///mlflow.db in the working folder), or ``uri`` as MLFLOW_TRACKING_URI."""
    env = {k: v for k, v in project_env().items() if not k.startswith("MLFLOW_")}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, timeout=600):
    done = subprocess.run(cmd, cwd=cwd, env=env or project_env(), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def small_params(
    mnist: Mnist, source: Path, overrides: dict | None = None, experiments: tuple[str, ...] = ("notebook",)
) -> dict:
    """The project's params.yaml for `mnist` read from `source`, keeping only `experiments`;
    `overrides` go into each experiment's shared model settings, except `seeds`, `probes` and
    `variants`, which replace the experiment's own."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"]["sources"] = [{"kind": "local", "path": str(source)}]
    params["data"]["fingerprints"] = fingerprints(mnist)
    params["split"]["val_size"] = len(mnist.y_train) // 6
    params["experiments"] = small_experiments(params["experiments"], overrides, experiments)
    return params


def small_experiments(declared: dict, overrides: dict | None, experiments: tuple[str, ...]) -> dict:
    """params.yaml's ``experiments``: only ``experiments``, with ``overrides`` (:func:`small_params`)."""
    kept = {name: declared[name] for name in experiments}
    for experiment in kept.values():
        for key, value in (overrides or {}).items():
            if key in ("seeds", "probes", "variants"):
                experiment[key] = value
            else:
                experiment["model"] = {**experiment["model"], key: value}
    return kept


def make_project(
    root: Path, mnist: Mnist, train_overrides: dict | None = None, experiments: tuple[str, ...] = ("notebook",)
) -> Path:
    """A git + DVC repository with the project's pipeline, reading `mnist` from a local file
    (see :func:`small_params` for `train_overrides` and `experiments`)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "MLproject", "python_env.yaml"):
        if (PROJECT / name).exists():
            shutil.copy(PROJECT / name, root / name)
    shutil.copytree(PROJECT / ".dvc" / "plots", root / ".dvc-plots")  # moved in after dvc init
    shutil.copytree(PROJECT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(PROJECT / ".gitignore", root / ".gitignore")
    source = root / "inputs" / "mnist.npz"
    source.parent.mkdir()
    np.savez_compressed(source, **mnist.arrays())
    params = small_params(mnist, source, train_overrides, experiments)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "test@example.com"], root)
    run(["git", "config", "user.name", "test"], root)
    run(["dvc", "init", "-q"], root)
    shutil.copy(PROJECT / ".dvc" / "config", root / ".dvc" / "config")  # the offline plots page
    shutil.move(root / ".dvc-plots", root / ".dvc" / "plots")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "project"], root)
    return root


# Per test process: a project whose data is downloaded and split, per data set (its fingerprints).
_SPLIT_TEMPLATES: dict[str, Path] = {}


def split_project(
    root: Path, mnist: Mnist, train_overrides: dict | None = None, experiments: tuple[str, ...] = ("notebook",)
) -> Path:
    """:func:`make_project` with its data already downloaded and split (`dvc repro split` up to
    date): a copy of a project made and split once per test process for this data, with these
    experiments. Only the experiments differ from the copied project, so DVC keeps its data."""
    key = json.dumps(fingerprints(mnist), sort_keys=True)
    if key not in _SPLIT_TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="bnlab-split-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = make_project(folder / "proj", mnist)
        run(["dvc", "repro", "split"], template)
        run(["git", "add", "-A"], template)
        run(["git", "commit", "-qm", "data split"], template)
        _SPLIT_TEMPLATES[key] = template
    shutil.copytree(_SPLIT_TEMPLATES[key], root, symlinks=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    declared = yaml.safe_load((PROJECT / "params.yaml").read_text())["experiments"]
    params["experiments"] = small_experiments(declared, train_overrides, experiments)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "--allow-empty", "-m", "experiments"], root)
    return root


def unpadded(markdown: str) -> str:
    """Markdown with its tables' cells unpadded (``| bn | 97.00% |``), whatever width pandas'
    ``to_markdown`` gave each column: a table row can be looked for as one string."""

    def row(line: str) -> str:
        if not line.startswith("|"):
            return line
        return "| " + " | ".join(cell.strip() for cell in line.strip().strip("|").split("|")) + " |"

    return "\n".join(row(line) for line in markdown.split("\n"))


def comparable_fits(mine: dict, committed: dict) -> tuple[dict, dict]:
    """This machine's reference fits and a committed fingerprint's, each cut to the fits the
    file holds: a fit added to tests/vendor_fits.py after a CPU kind's file was made is compared
    with the files that have it (``make fingerprint`` on that kind adds it). A fit the file holds
    and this machine does not run fails: the file is stale."""
    assert set(committed) <= set(mine), f"fits gone from tests/vendor_fits.py: {sorted(set(committed) - set(mine))}"
    return {name: mine[name] for name in committed}, committed
