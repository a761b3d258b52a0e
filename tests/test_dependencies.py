"""dvc.yaml tells DVC the truth: every module a stage's command imports is a dep, and nothing
else (a folder stands for all of its modules); train depends on the experiment keys that
training reads, not on its description."""

from pathlib import Path

import pytest
import yaml

from bnlab.core import imports
from bnlab.experiments.params import ExperimentParams
from bnlab.pipeline.stages import DATA_STAGES, EXPERIMENT_STAGES, PUBLISHING_STAGES

from helpers import PROJECT

STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def declared(stage: str, kind: str) -> list:
    definition = STAGES[stage].get("do", STAGES[stage])
    return definition.get(kind, [])


def stage_modules(stage: str) -> set[str]:
    """What `python -m bnlab.pipeline.stages.<stage>` runs."""
    return {str(path) for path in imports.closure([f"bnlab.pipeline.stages.{stage}"])}


def expanded(dep: str) -> set[str]:
    """A dep's Python files: itself, or a folder's modules (its subfolders too: DVC hashes them)."""
    path = PROJECT / dep
    if path.is_dir():
        return {str(p.relative_to(PROJECT)) for p in path.rglob("*.py")}
    return {dep}


def test_the_stages_are_the_ones_the_code_has():
    assert set(STAGES) == {*DATA_STAGES, *EXPERIMENT_STAGES, *PUBLISHING_STAGES}
    for stage in STAGES:
        cmd = STAGES[stage].get("do", STAGES[stage])["cmd"]
        assert cmd.split()[:3] == ["python", "-m", f"bnlab.pipeline.stages.{stage}"], cmd


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_depends_on_exactly_the_modules_its_command_imports(stage):
    code = stage_modules(stage)
    listed = set().union(*(expanded(dep) for dep in declared(stage, "deps") if dep.startswith("src/")))
    assert not code - listed, f"{stage}: imported but not in dvc.yaml deps: {sorted(code - listed)}"
    assert not listed - code, f"{stage}: in dvc.yaml deps but never imported: {sorted(listed - code)}"


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_folder_dep_is_a_whole_component_and_a_component_used_whole_is_a_folder(stage):
    deps = [dep for dep in declared(stage, "deps") if dep.startswith("src/")]
    code = stage_modules(stage)
    for dep in deps:
        if (PROJECT / dep).is_dir():
            assert expanded(dep) <= code, dep
    for component in (PROJECT / "src/bnlab").iterdir():
        modules = {str(p.relative_to(PROJECT)) for p in component.glob("*.py")}
        if component.is_dir() and modules and modules <= code and not any(component.glob("*/*.py")):
            assert str(component.relative_to(PROJECT)) in deps, f"{stage}: list {component.name}/ as a folder"


def test_downloading_needs_neither_tracking_nor_the_other_commands():
    modules = stage_modules("download")
    assert not {m for m in modules if m.startswith(("src/bnlab/tracking", "src/bnlab/execution", "src/bnlab/ml/tf"))}
    pipeline = {Path(m).name for m in modules if m.startswith("src/bnlab/pipeline/")}
    assert pipeline == {"__init__.py", "command.py", "download.py"}


def test_train_depends_on_what_training_reads_and_not_on_the_description():
    keys = {key.removeprefix("experiments.${key}.") for key in declared("train", "params")}
    assert keys == {*ExperimentParams.TRAINING_KEYS, "split"}
    report = {key.removeprefix("experiments.${key}.") for key in declared("report", "params")}
    assert {"description", "reference", "baseline"} <= report


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "src" / "bnlab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def __getattr__(name):\n    from bnlab import lazy\n")
    (package / "a.py").write_text("import os\nfrom bnlab import b\n")
    (package / "b.py").write_text("def f():\n    from bnlab.c import thing\n")
    (package / "c.py").write_text("thing = 1\n")
    (package / "lazy.py").write_text("")
    found = {str(p) for p in imports.closure(["bnlab.a"], tmp_path / "src")}
    assert found == {f"src/bnlab/{name}.py" for name in ("__init__", "a", "b", "c")}  # not lazy
