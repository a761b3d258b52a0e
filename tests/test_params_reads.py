"""Each stage's `params` in dvc.yaml are exactly the keys it reads while it runs: a key it reads
but does not list would leave its outputs stale when that key changes; a key it lists but never
reads re-runs it for nothing. Stages run in this process on small data, reads recorded."""

import pytest
import yaml

from bnlab.pipeline import cli
from bnlab.pipeline.stages import EXPERIMENT_STAGES

from helpers import PROJECT, make_mnist, split_project
from params_reads import recorded_reads

STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
ORDER = ("download", "split", "train", "evaluate", "report")


def declared_params(stage: str) -> set[str]:
    definition = STAGES[stage].get("do", STAGES[stage])
    return set(definition.get("params", []))


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    """The keys each stage read, the evaluate stage's also against a store that never saw the
    models (it then re-creates their runs: another path through the code)."""
    root = split_project(
        tmp_path_factory.mktemp("reads") / "proj",
        make_mnist(300, 100),
        {"epochs": 1, "seeds": [0], "hidden_units": [8], "probes": {"every_steps": 5, "images": 40, "unit": 0}},
    )
    found = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        monkeypatch.setenv("BNLAB_WORKERS", "1")  # jobs in this process, where reads are recorded
        for stage in ORDER:
            with recorded_reads(monkeypatch) as keys:
                assert cli.main([stage] + (["notebook"] if stage in EXPERIMENT_STAGES else [])) == 0
            found[stage] = set(keys)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'fresh.db'}")
        with recorded_reads(monkeypatch) as keys:
            assert cli.main(["evaluate", "notebook"]) == 0
        found["evaluate"] |= keys
        with recorded_reads(monkeypatch) as keys:
            assert cli.main(["results"]) == 0
        found["results"] = set(keys)
    return found


@pytest.mark.parametrize("stage", ORDER)
def test_a_stage_lists_exactly_the_params_it_reads(reads, stage):
    listed = declared_params(stage)
    assert not reads[stage] - listed, f"{stage} reads but dvc.yaml does not list: {sorted(reads[stage] - listed)}"
    assert not listed - reads[stage], f"{stage}: dvc.yaml lists but it never reads: {sorted(listed - reads[stage])}"


def test_the_results_stage_reads_no_params_only_the_reports(reads):
    # It is not per experiment, so dvc.yaml could not name each one's keys: it reads reports/.
    assert reads["results"] == set() == declared_params("results")


def test_the_recorder_sees_reads_and_ignores_validation(monkeypatch):
    from bnlab.experiments.params import load_params

    with recorded_reads(monkeypatch) as keys:
        params = load_params(PROJECT / "params.yaml")  # validation reads every key
        assert keys == set()
        _ = params.experiment("notebook").seeds
        params.split.model_dump()
        params.experiment("notebook").training_settings()
    assert keys == {
        "experiments.${key}.seeds",
        "split",
        "experiments.${key}.model",
        "experiments.${key}.variants",
        "experiments.${key}.probes",
        "experiments.${key}.grid",
        "experiments.${key}.tune",
        "experiments.${key}.train_images",
    }
