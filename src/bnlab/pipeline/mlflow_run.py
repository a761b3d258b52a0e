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

from bnlab.experiments.params import DEFAULT_EXPERIMENT
from bnlab.ml.hyperparams import HYPERPARAMETERS, parse_value
from bnlab.pipeline.stages import DATA_STAGES, EXPERIMENT_STAGES
from bnlab.pipeline.summary import print_summary

# Options that are not estimator settings → their params.yaml keys ({e}: the experiment).
OTHER_OVERRIDES = {"seeds": "experiments.{e}.seeds", "val_size": "split.val_size"}


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


def _setting(field: str):
    """Parse one estimator setting from text and validate it as params.yaml would."""
    from bnlab.core.settings import ParamsError

    def parse(text: str):
        try:
            return parse_value(field, text)
        except ParamsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _option(parser, name: str, type=str, **kwargs) -> None:
    # Both spellings: `--learning-rate` by hand, `--learning_rate` as `mlflow run -P` appends
    # parameters an entry point does not declare. An empty value (MLproject's default for a
    # parameter not given) means "as in params.yaml".
    spellings = {f"--{name.replace('_', '-')}", f"--{name}"}

    def parse(text: str):
        return None if text.strip() == "" else type(text)

    parser.add_argument(*sorted(spellings), dest=name, type=parse, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser(prog="bnlab pipeline", description=__doc__.split("\n\n")[0])
    sub.add_argument(
        "--experiment", default=DEFAULT_EXPERIMENT, help="the experiment in params.yaml (default: %(default)s)"
    )
    sub.add_argument(
        "--until", choices=[*DATA_STAGES, *EXPERIMENT_STAGES], help="stop after this stage (default: run everything)"
    )
    settings = sub.add_argument_group("estimator settings (experiments.<experiment>.model.<name>)")
    for field in HYPERPARAMETERS:
        _option(settings, field, type=_setting(field), metavar="VALUE")
    _option(sub, "seeds", type=_int_list, help="e.g. 0,1,2")
    _option(sub, "val_size", type=_whole, help="validation images taken from training")
    _option(sub, "data_path", help="use this mnist.npz or IDX folder as the only source")
    sub.add_argument(
        "--fingerprints",
        choices=["check", "skip"],
        default="check",
        help="skip: do not check MNIST's array fingerprints (for data that is not MNIST)",
    )
    return sub


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


def overrides(args: argparse.Namespace) -> dict[str, object]:
    """params.yaml key → value for every option given."""
    keys = {field: f"experiments.{{e}}.model.{field}" for field in HYPERPARAMETERS}
    keys.update(OTHER_OVERRIDES)
    return {
        key.format(e=args.experiment): getattr(args, option)
        for option, key in keys.items()
        if getattr(args, option, None) is not None
    }


def set_params(args: argparse.Namespace, params_file: Path = Path("params.yaml")) -> list[str]:
    """The -S overrides for values that differ from params.yaml (none: plain `dvc repro`)."""
    import yaml

    current = yaml.safe_load(params_file.read_text())
    if args.experiment not in current.get("experiments", {}):
        raise SystemExit(
            f"bnlab pipeline: error: no experiment {args.experiment!r} in {params_file}; "
            f"declared: {', '.join(current.get('experiments', {}))}"
        )
    sets = [
        f"{key}={hydra_value(value)}" for key, value in overrides(args).items() if value != current_value(current, key)
    ]
    if args.data_path:
        path = hydra_value(str(Path(args.data_path).resolve()))
        sets.append(f"data.sources=[{{kind:local,path:{path}}}]")
    if args.fingerprints == "skip":
        sets.append("++data.fingerprints=null")  # ++: add the key, params.yaml leaves it out
    return sets


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sets = set_params(args)
    stage = args.until or EXPERIMENT_STAGES[-1]
    targets = [stage if stage in DATA_STAGES else f"{stage}@{args.experiment}"]
    if sets:
        command = ["dvc", "exp", "run", *targets]
        for item in sets:
            command += ["-S", item]
    else:
        command = ["dvc", "repro", *targets]
    print("+ " + " ".join(command), flush=True)
    code = subprocess.call(command, env=_env_with_this_python())
    if code == 0 and stage == EXPERIMENT_STAGES[-1]:  # a summary after a failure would show older results
        print_summary([args.experiment])
    return code


def _env_with_this_python() -> dict[str, str]:
    # Stage commands (`python -m ...`) must come from this environment, whatever PATH says.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
