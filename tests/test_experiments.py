"""Experiments declared in params.yaml: one DVC stage per experiment and step, bad definitions
refused before any work, and paths that agree between the code and dvc.yaml."""

import json

import pytest
import yaml

from bnlab.core import layout

from helpers import PROJECT, make_mnist, run, split_project

TINY = {"epochs": 1, "seeds": [0], "hidden_units": [8], "probes": None}


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    root = split_project(
        tmp_path_factory.mktemp("two") / "proj", make_mnist(300, 100), TINY, experiments=("notebook", "noisy_bn")
    )
    run(["dvc", "repro"], root)
    return root


def stale_stages(root) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], root).stdout))


def edit_params(root, change) -> str:
    path = root / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return original


@pytest.mark.slow
def test_each_experiment_has_its_own_stages_and_outputs(two_experiments):
    root = two_experiments
    for name in ("notebook", "noisy_bn"):
        assert (root / layout.models_dir(name) / "pipeline.json").exists()
        assert (root / layout.eval_dir(name) / "test_metrics.json").exists()
        assert (root / layout.reports_dir(name) / "metrics.json").exists()
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert {f"{stage}@{name}" for stage in ("train", "evaluate", "report") for name in ("notebook", "noisy_bn")} <= set(
        lock
    )
    summary = run(["bnlab", "summary"], root).stdout
    assert "# notebook:" in summary and "# noisy_bn:" in summary


@pytest.mark.slow
def test_changing_one_experiment_makes_only_its_stages_stale(two_experiments):
    root = two_experiments
    assert stale_stages(root) == set()

    def lower_learning_rate(params):
        params["experiments"]["noisy_bn"]["model"]["learning_rate"] = 0.001

    original = edit_params(root, lower_learning_rate)
    try:
        stale = stale_stages(root)
        dry = run(["dvc", "repro", "--dry"], root).stdout
    finally:
        (root / "params.yaml").write_text(original)
    # The report reads the model's settings too (the theory's prediction of its gradients);
    # evaluate follows if the models change.
    assert stale == {"train@noisy_bn", "report@noisy_bn"}
    ran = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
    assert "train@noisy_bn" in ran and all(stage.endswith("@noisy_bn") for stage in ran)


@pytest.mark.slow
def test_a_change_to_the_prediction_code_makes_evaluate_stale_but_not_report(two_experiments):
    root = two_experiments
    estimator = root / "src/bnlab/ml/estimator.py"
    original = estimator.read_text()
    estimator.write_text(
        original.replace(
            "return self.classes_[np.argmax(proba, axis=1)]", "return self.classes_[np.argmax(proba, axis=-1)]"
        )
    )
    try:
        stale = stale_stages(root)
    finally:
        estimator.write_text(original)
    assert {"evaluate@notebook", "evaluate@noisy_bn", "train@notebook"} <= stale
    assert not {s for s in stale if s.startswith(("report", "download", "split"))}


@pytest.mark.slow
def test_a_change_to_a_figure_or_the_summary_makes_only_the_reports_stale(two_experiments):
    root = two_experiments
    edited = [root / "src/bnlab/analysis/figures.py", root / "src/bnlab/pipeline/summary.py"]
    originals = [path.read_text() for path in edited]
    for path, text in zip(edited, originals):
        path.write_text(text + "\n# an edit\n")
    try:
        stale = stale_stages(root)
    finally:
        for path, text in zip(edited, originals):
            path.write_text(text)
    assert stale == {"report@notebook", "report@noisy_bn"}


@pytest.mark.slow
def test_a_new_description_re_runs_only_the_report(two_experiments):
    root = two_experiments
    original = edit_params(root, lambda p: p["experiments"]["notebook"].update(description="new words"))
    try:
        stale = stale_stages(root)
    finally:
        (root / "params.yaml").write_text(original)
    assert stale == {"report@notebook"}


@pytest.fixture
def bnlab_here(tmp_path, bnlab_in):
    """``bnlab ARGS`` run in this process from ``tmp_path`` (conftest's bnlab_in)."""
    return lambda args: bnlab_in(tmp_path, args)


def notebook(change):
    """A change to params.yaml's ``notebook`` experiment."""
    return lambda params: change(params["experiments"]["notebook"])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["split"].update(val_size=-5), "split.val_size: Input should be greater than 0"),
        (
            notebook(lambda e: e["variants"]["plain"].update(batch_normm=False)),
            "experiments.notebook.variants.plain.batch_normm: Extra inputs are not permitted",
        ),
        (notebook(lambda e: e.update(baseline="vanilla")), "baseline 'vanilla' is not one of the variants"),
        (
            notebook(lambda e: e.update(variants={})),
            "experiments.notebook.variants: Dictionary should have at least 2 items",
        ),
        (
            notebook(lambda e: e["probes"].update(every_steps=0)),
            "experiments.notebook.probes.every_steps: Input should be greater than 0",
        ),
        (notebook(lambda e: e.update(seeds=[])), "experiments.notebook.seeds"),
        (
            notebook(
                lambda e: e.update(tune={"grid": {"learning_rate": [0.01]}, "seeds": [0], "metric": "test_accuracy"})
            ),
            "experiments.notebook.tune.metric: Input should be 'val_accuracy' or 'val_loss'",
        ),
    ],
)
def test_a_bad_param_stops_every_stage_with_one_message_before_any_work(tmp_path, bnlab_here, change, message):
    """Whatever the stage, a bad params.yaml is one message naming the key, before any work
    (test_config.py checks the message for each kind of bad value, without the CLI)."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    change(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("download", "split", "train notebook", "evaluate notebook", "report notebook", "results"):
        status, stderr = bnlab_here(stage)
        assert status == 2, (stage, stderr)
        assert message in stderr and "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) <= 3, stderr  # one message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_an_unknown_experiment_is_named_with_the_declared_ones(tmp_path, bnlab_here):
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    status, stderr = bnlab_here("train notebok")
    assert status == 2
    assert "no experiment 'notebok' in params.yaml; declared: notebook, ioffe2015, ioffe2015_slow, noisy_bn" in stderr


def test_dvc_yaml_declares_the_paths_the_code_uses():
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    assert stages["download"]["outs"] == [str(layout.RAW)]
    assert stages["split"]["outs"] == [str(layout.split_file(name)) for name in layout.SPLITS]
    key = "${key}"
    assert stages["train"]["do"]["outs"] == [str(layout.models_dir(key))]
    assert stages["evaluate"]["do"]["outs"] == [str(layout.eval_dir(key))]
    report = stages["report"]["do"]
    declared = [
        next(iter(entry)) if isinstance(entry, dict) else entry  # {path: {options}} or path
        for entry in (*report["outs"], *report["metrics"], *report["plots"])
    ]
    from bnlab.analysis.report import FILES, FOLDERS

    assert sorted(declared) == sorted(str(layout.reports_dir(key) / name) for name in (*FILES, *FOLDERS))
