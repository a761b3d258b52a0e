"""`bnlab summary`: every experiment's comparison table, and how to browse its runs."""

from __future__ import annotations

import argparse
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
    return print_summary(parser.parse_args(argv).experiments)


def print_summary(experiments: list[str] | None = None, params_file: Path = Path("params.yaml")) -> int:
    """Every experiment's comparison table (or the ones named) and how to browse the runs."""
    names = experiments or list(load_params(params_file).experiments)
    tables = {name: layout.reports_dir(name) / TABLE for name in names}
    missing = [name for name, table in tables.items() if not table.exists()]
    for name, table in tables.items():
        if table.exists():
            print(table.read_text())
    if missing:
        print(f"not run yet: {', '.join(missing)} (`dvc repro` runs every experiment)", file=sys.stderr)
    if len(missing) == len(tables):
        return 1
    uri = redact(tracking_uri())
    # MLflow 3 opens an experiment on its GenAI pages: point at the runs table instead.
    runs_page = runs_table_path(uri)
    if uri.startswith(("http://", "https://")):
        print(f"Browse the runs: open {uri.rstrip('/')}/{runs_page}")
    else:
        mlflow = ".venv/bin/mlflow" if Path(".venv/bin/mlflow").exists() else "mlflow"
        print(f"Browse the runs: {mlflow} ui --backend-store-uri {uri} --port 5000, then open "
              f"http://127.0.0.1:5000/{runs_page} and expand a parent run (the + beside its name) "
              f"to see its model runs")
    return 0


# MLflow 3.17's UI opens an experiment in its GenAI layout (traces) unless told otherwise; this
# query opens the model-training layout on the runs table (seen in headless Chromium).
MODEL_TRAINING = "?workflowType=machine_learning"


def runs_table_path(uri: str) -> str:
    """``#/experiments/<id>/runs`` (in the model-training layout) for the project's MLflow
    experiment when a SQLite store can tell its id without starting MLflow, else
    ``#/experiments``."""
    database = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and Path(database).exists():
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                found = db.execute("select experiment_id from experiments where name = ?",
                                   (experiment_name(),)).fetchone()
            if found:
                return f"#/experiments/{found[0]}/runs{MODEL_TRAINING}"
        except sqlite3.Error:
            pass
    return "#/experiments"
