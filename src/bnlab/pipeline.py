"""`bnlab pipeline`: the whole pipeline (or up to one stage) with typed overrides, for
MLproject's entry points. Without overrides it is `dvc repro`; with them, `dvc exp run -S ...`,
so each variation is a DVC experiment as well as MLflow runs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

OVERRIDES = {  # option → params.yaml key
    "epochs": "train.epochs",
    "learning_rate": "train.learning_rate",
    "batch_size": "train.batch_size",
    "seeds": "train.seeds",
    "val_size": "split.val_size",
    "hidden_units": "train.hidden_units",
    "experiment": "mlflow.experiment",
}


def _whole(text: str) -> int:
    """An integer; "10.0" too, as MLproject passes numbers of type float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_pipeline_parser(commands) -> None:
    sub = commands.add_parser("pipeline", help="run the pipeline (dvc repro / dvc exp run) with overrides")
    sub.add_argument("--until", choices=["download", "split", "train", "evaluate", "report"],
                     help="stop after this stage (default: run everything)")
    sub.add_argument("--epochs", type=_whole)
    sub.add_argument("--learning-rate", type=float)
    sub.add_argument("--batch-size", type=_whole)
    sub.add_argument("--seeds", type=_int_list, help="e.g. 0,1,2")
    sub.add_argument("--val-size", type=_whole, help="validation images taken from training")
    sub.add_argument("--hidden-units", type=_int_list, help="e.g. 32,32")
    sub.add_argument("--experiment", help="MLflow experiment name")
    sub.add_argument("--data-path", help="use this mnist.npz or IDX folder as the only source")
    sub.add_argument("--fingerprints", choices=["check", "skip"], default="check",
                     help="skip: do not check MNIST's array fingerprints (for data that is not MNIST)")


def hydra_value(value) -> str:
    """DVC's -S takes Hydra override values: lists as [a,b], strings quoted."""
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value).replace('"', "'")
    return str(value)


def current_value(params: dict, dotted: str):
    for part in dotted.split("."):
        params = params.get(part, {}) if isinstance(params, dict) else {}
    return params


def set_params(args: argparse.Namespace, params_file: Path = Path("params.yaml")) -> list[str]:
    """The -S overrides for values that differ from params.yaml (none: plain `dvc repro`)."""
    import yaml

    current = yaml.safe_load(params_file.read_text())
    sets = [f"{key}={hydra_value(getattr(args, option))}" for option, key in OVERRIDES.items()
            if getattr(args, option, None) not in (None, "")
            and getattr(args, option) != current_value(current, key)]
    if args.data_path:
        path = hydra_value(str(Path(args.data_path).resolve()))
        sets.append(f"data.sources=[{{kind:local,path:{path}}}]")
    if args.fingerprints == "skip":
        sets.append("++data.fingerprints=null")  # ++: add the key, params.yaml leaves it out
    return sets


def run_pipeline(args: argparse.Namespace) -> int:
    sets = set_params(args)
    targets = [args.until] if args.until else []
    if sets:
        command = ["dvc", "exp", "run", *targets]
        for item in sets:
            command += ["-S", item]
    else:
        command = ["dvc", "repro", *targets]
    print("+ " + " ".join(command), flush=True)
    code = subprocess.call(command, env=_env_with_this_python())
    if code == 0 and not args.until or args.until == "report":
        print_summary()
    return code


def _env_with_this_python() -> dict[str, str]:
    # Stage commands (`bnlab ...`) must come from this environment, whatever PATH says.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def print_summary(reports: Path = Path("reports")) -> int:
    table = reports / "comparison.md"
    if not table.exists():
        print("no reports/comparison.md yet: run `dvc repro` (or `make run`) first", file=sys.stderr)
        return 1
    print(table.read_text())
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    if uri.startswith(("http://", "https://")):
        print(f"Browse the runs: open {uri}")
    else:
        mlflow = ".venv/bin/mlflow" if Path(".venv/bin/mlflow").exists() else "mlflow"
        print(f"Browse the runs: {mlflow} ui --backend-store-uri {uri} --port 5000  "
              f"(then open http://127.0.0.1:5000)")
    return 0
