"""Stage `report`: figures, the comparison table and the statistics across seeds → reports/,
all of it also on the pipeline's parent run in MLflow."""

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab import mlflow_logging, tracking
from bnlab.atomic import atomic_path
from bnlab.comparison import VARIANTS, comparison_markdown, mean_history, summarize
from bnlab.config import load_params
from bnlab.plots import TITLES, confusion_figure, curve_figure, save_png

MODELS = Path("models")
EVAL = Path("eval/test_metrics.json")
OUTPUT = Path("reports")


def load_histories(models: Path, seeds: list[int]) -> dict[str, list[dict]]:
    return {variant: [json.loads((models / tracking.run_name(variant, seed) / "estimator.json").read_text())["history"]
                      for seed in seeds] for variant in VARIANTS}


def run(params_path: str = "params.yaml", models: Path = MODELS, evaluation: Path = EVAL,
        output: Path = OUTPUT) -> None:
    params = load_params(params_path)
    results = json.loads(evaluation.read_text())
    seeds = params.train.seeds
    per_model = {v: {r["seed"]: r for r in results.values() if r["variant"] == v} for v in VARIANTS}
    summary = summarize(per_model)
    table = comparison_markdown(summary)
    curves = {variant: mean_history(h) for variant, h in load_histories(models, seeds).items()}
    confusion = {v: np.sum([r["confusion_matrix"] for r in per_model[v].values()], axis=0) for v in VARIANTS}

    meta = json.loads((models / "pipeline.json").read_text())
    client, experiment_id = tracking.connect(params.mlflow.experiment)
    lineage = {**tracking.git_state(), "data_fingerprint": meta["data_fingerprint"], "dvc_stage": "report"}
    parent_id, owned = tracking.parent_for_results(client, experiment_id, meta["pipeline_key"], lineage)

    with tracking.terminated_on_exit(client, parent_id, owned), ExitStack() as outputs:
        # Each output is written under a temporary name and renamed into place at the end.
        figures = outputs.enter_context(atomic_path(output / "figures", directory=True))
        history = outputs.enter_context(atomic_path(output / "history", directory=True))
        metrics_file = outputs.enter_context(atomic_path(output / "metrics.json"))
        table_file = outputs.enter_context(atomic_path(output / "comparison.md"))
        for metric in TITLES:
            save_png(curve_figure(metric, {v: curves[v][metric] for v in VARIANTS}, len(seeds)),
                     figures / f"{metric}.png")
        save_png(confusion_figure(confusion, list(range(10)), len(seeds)), figures / "confusion_matrices.png")
        client.log_artifacts(parent_id, str(figures), "figures")  # the same PNGs, not rendered twice
        for variant in VARIANTS:
            frame = pd.DataFrame({metric: curves[variant][metric][0] for metric in TITLES})
            frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
            frame.round(6).to_csv(history / f"{variant}.csv", index=False)
        metrics_file.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        table_file.write_text("# BN vs plain on the MNIST test set\n\n" + table)
        client.log_text(parent_id, table, "comparison.md")
        client.log_dict(parent_id, summary, "metrics.json")
        mlflow_logging.log_metrics(client, parent_id, aggregate_metrics(summary))
    comp = summary["comparison"]
    print(f"wrote {output}/: BN gain {100 * comp['test_accuracy_gain']:+.2f} points over "
          f"{comp['seeds']} seeds (p = {comp['p_value']}); table in {output}/comparison.md")


def aggregate_metrics(summary: dict) -> dict[str, float]:
    """The summary as flat MLflow metrics on the parent run (undefined ones left out)."""
    flat = {f"{v}_{k}": summary[v][k] for v in VARIANTS
            for k in ("test_accuracy_mean", "test_accuracy_std", "test_loss_mean")}
    flat["test_accuracy_gain"] = summary["comparison"]["test_accuracy_gain"]
    flat["p_value"] = summary["comparison"]["p_value"]
    return {k: v for k, v in flat.items() if v is not None}
