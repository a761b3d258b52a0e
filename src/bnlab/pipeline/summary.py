"""`bnlab summary`: every experiment's comparison table, and how to browse its runs."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from bnlab.core import layout
from bnlab.experiments.params import load_params
from bnlab.tracking.store import experiment_name, redact, tracking_uri

TABLE = "comparison.md"  # in reports/<experiment>/


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bnlab summary", description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", help="experiments to print (default: every one in params.yaml)")
    parser.add_argument("--url", action="store_true", help="print only the address of the runs table")
    args = parser.parse_args(argv)
    if args.url:
        print(f"The runs table: {runs_url(tracking_uri())}")
        return 0
    return print_summary(args.experiments)


def print_summary(experiments: list[str] | None = None, params_file: Path = Path("params.yaml")) -> int:
    """Every experiment's comparison table (or the ones named) and how to browse the runs."""
    names = experiments or list(load_params(params_file).experiments)
    tables = {name: layout.reports_dir(name) / TABLE for name in names}
    missing = [name for name, table in tables.items() if not table.exists()]
    for table in tables.values():
        if table.exists():
            print(table.read_text())
    if missing:
        print(f"not run yet: {', '.join(missing)} (`dvc repro` runs every experiment)", file=sys.stderr)
    if len(missing) == len(tables):
        return 1
    print(browse_line(tracking_uri()))
    return 0


UI = "http://127.0.0.1:5000"  # where `mlflow ui` (and `make ui`) serves a local store


def runs_url(uri: str) -> str:
    """The address of the runs table of the store at ``uri``, its password redacted: on the
    server itself, or on ``mlflow ui`` for a local store. MLflow 3 opens an experiment on its
    GenAI pages, so this points at the runs table instead."""
    server = redact(uri).rstrip("/") if uri.startswith(("http://", "https://")) else UI
    return f"{server}/{runs_table_path(uri)}"


def browse_line(uri: str) -> str:
    """How to open the runs table of the store at ``uri`` (its password redacted)."""
    if uri.startswith(("http://", "https://")):
        return f"Browse the runs: open {runs_url(uri)}"
    mlflow = ".venv/bin/mlflow" if Path(".venv/bin/mlflow").exists() else "mlflow"
    return (
        f"Browse the runs: {mlflow} ui --backend-store-uri {redact(uri)} --port 5000 (or `make ui`), then open "
        f"{runs_url(uri)} and expand a parent run (the + beside its name) to see its model runs"
    )


# MLflow 3.17's UI opens an experiment in its GenAI layout (traces) unless told otherwise; this
# query opens the model-training layout on the runs table (seen in headless Chromium).
MODEL_TRAINING = "?workflowType=machine_learning"


def runs_table_path(uri: str) -> str:
    """``#/experiments/<id>/runs`` (in the model-training layout) for the project's MLflow
    experiment, else (no such experiment yet, an unreachable store) ``#/experiments``."""
    found = sqlite_experiment_id(uri) if uri.startswith("sqlite:///") else server_experiment_id(uri)
    return f"#/experiments/{found}/runs{MODEL_TRAINING}" if found else "#/experiments"


def sqlite_experiment_id(uri: str) -> str | None:
    """Read from the database itself, without starting MLflow."""
    database = uri.removeprefix("sqlite:///")
    if not Path(database).exists():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            found = db.execute("select experiment_id from experiments where name = ?", (experiment_name(),)).fetchone()
    except sqlite3.Error:
        return None
    return str(found[0]) if found else None


def server_experiment_id(uri: str) -> str | None:
    """Asked of the tracking server at ``uri`` through MLflow's client (with the credentials in
    ``uri``, if any); None if it cannot answer."""
    if not uri.startswith(("http://", "https://")):
        return None
    from bnlab.tracking.runs import MlflowClient, mlflow  # MLflow: seconds; its retries made short
    from bnlab.tracking.store import TrackingError, check_reachable, server_credentials, store_uri

    try:
        check_reachable(uri, timeout=5)
        os.environ.update(server_credentials(uri))
        found = MlflowClient(store_uri(uri)).get_experiment_by_name(experiment_name())
    except (TrackingError, mlflow.exceptions.MlflowException):
        return None
    return found.experiment_id if found else None
