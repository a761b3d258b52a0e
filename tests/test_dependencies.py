"""dvc.yaml tells DVC the truth: every module a stage's command imports is a dep, and nothing
else; train depends on the experiment keys that training reads, not on its description."""

import pytest
import yaml

from bnlab.config import ExperimentParams
from helpers import PROJECT
from imports import stage_modules

STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def declared(stage: str, kind: str) -> list:
    definition = STAGES[stage].get("do", STAGES[stage])
    return definition.get(kind, [])


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_depends_on_exactly_the_modules_its_command_imports(stage):
    code = {str(path) for path in stage_modules(stage)}
    listed = {dep for dep in declared(stage, "deps") if dep.startswith("src/")}
    assert not code - listed, f"{stage}: imported but not in dvc.yaml deps: {sorted(code - listed)}"
    assert not listed - code, f"{stage}: in dvc.yaml deps but never imported: {sorted(listed - code)}"


def test_train_depends_on_what_training_reads_and_not_on_the_description():
    keys = {key.removeprefix("experiments.${key}.") for key in declared("train", "params")}
    assert keys == {*ExperimentParams.TRAINING_KEYS, "split"}
    report = {key.removeprefix("experiments.${key}.") for key in declared("report", "params")}
    assert {"description", "reference", "baseline"} <= report


def test_the_import_reader_sees_imports_inside_functions(tmp_path, monkeypatch):
    import imports

    package = tmp_path / "src" / "bnlab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def __getattr__(name):\n    from bnlab import lazy\n")
    (package / "a.py").write_text("import os\nfrom bnlab import b\n")
    (package / "b.py").write_text("def f():\n    from bnlab.c import thing\n")
    (package / "c.py").write_text("thing = 1\n")
    (package / "lazy.py").write_text("")
    monkeypatch.setattr(imports, "SRC", tmp_path / "src")
    found = {str(p) for p in imports.closure(["bnlab.a"])}
    assert found == {f"src/bnlab/{name}.py" for name in ("__init__", "a", "b", "c")}  # not lazy
