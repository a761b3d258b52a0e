"""The house: components that say what they own, imports that point one way (docs/design.md),
no cycles, small modules, and every fact repeated outside Python checked against its home."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from bnlab.core import imports, layout
from bnlab.experiments.params import DEFAULT_EXPERIMENT
from bnlab.tracking.store import default_uri

from helpers import PROJECT

PACKAGE = PROJECT / "src" / "bnlab"
# docs/design.md: a component may import its own modules and those of the components below it;
# import-linter's contract in pyproject.toml holds the order (test_imports_point_down_the_layers).
(CONTRACT,) = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LAYERS = tuple(layer.removeprefix("bnlab.") for layer in CONTRACT["layers"])
MAX_LINES = 320  # "about 300": a module longer than this does more than one job


def component(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports.imported_modules(path) if m in MODULES} for name, path in MODULES.items()}


def test_every_module_is_in_a_component_that_says_what_it_owns():
    assert {component(name) for name in MODULES} - {None} == set(LAYERS)
    assert {name for name in MODULES if component(name) is None} == {"bnlab"}
    for layer in LAYERS:
        docstring = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert docstring and docstring.split("\n\n")[0].strip().endswith("."), layer


def test_imports_point_down_the_layers():
    """import-linter's layers contract, run as CI runs it (imports inside functions count)."""
    assert CONTRACT["type"] == "layers" and len(LAYERS) == len(set(LAYERS))
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(linter), "--no-cache"], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 kept, 0 broken" in done.stdout


def test_there_is_no_import_cycle():
    """Imports inside functions count too: a cycle hidden in a function is still a cycle."""
    visiting, done, cycles = set(), set(), []

    def visit(name: str, path: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append(" -> ".join(path[path.index(name) :] + [name]))
            return
        visiting.add(name)
        for target in sorted(GRAPH[name] - {name}):
            visit(target, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])
    assert cycles == []


def test_no_module_is_long():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_store_and_the_default_experiment_outside_python_agree_with_their_homes():
    makefile = (PROJECT / "Makefile").read_text()
    store = default_uri(Path(".")).replace(str(Path(".").resolve()) + "/", "")  # sqlite:///mlflow.db
    assert f"--backend-store-uri {store}" in makefile
    assert f"--artifacts-destination ./{layout.STORE_ARTIFACTS}" in makefile
    assert re.search(rf"^EXPERIMENT \?= {DEFAULT_EXPERIMENT}$", makefile, re.M)
    entry_points = yaml.safe_load((PROJECT / "MLproject").read_text())["entry_points"]
    assert {point["parameters"]["experiment"]["default"] for point in entry_points.values()} == {DEFAULT_EXPERIMENT}
    ignored = (PROJECT / ".gitignore").read_text().splitlines()
    assert {layout.STORE_DB, f"{layout.STORE_ARTIFACTS}/", f"{layout.XLA_CACHE}/"} <= set(ignored)
