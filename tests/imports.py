"""Which of the package's modules a `bnlab <stage>` command imports, read from the code with ast.

Every import counts, at module level or inside a function (conservative: a function may run),
except inside a module-level ``__getattr__`` (bnlab/__init__.py's lazy ``KerasMLPClassifier``,
which runs only when that attribute is used: no stage uses it). So do the module names given to
``set_forkserver_preload`` (the workers' forkserver imports them: bnlab.workers).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_file(name: str) -> Path | None:
    path = SRC / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The bnlab modules that the file at ``path`` imports."""
    found = set()
    tree = ast.parse(path.read_text())
    lazy = {id(node) for fn in tree.body if isinstance(fn, ast.FunctionDef) and fn.name == "__getattr__"
            for node in ast.walk(fn)}
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "set_forkserver_preload":
            names = {c.id for c in ast.walk(node) if isinstance(c, ast.Name)}  # a module-level constant
            values = [c for c in ast.walk(node) if isinstance(c, ast.Constant)]
            values += [a.value for a in tree.body if isinstance(a, ast.Assign) and isinstance(a.value, ast.Constant)
                       and any(getattr(t, "id", None) in names for t in a.targets)]
            found |= {c.value for c in values if module_file(str(c.value))}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("bnlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bnlab"):
            found.add(node.module)
            # `from bnlab import data` imports the module bnlab.data
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return found


def closure(roots: list[str]) -> set[Path]:
    """Every bnlab source file the roots import, directly or through other modules, with the
    packages' __init__ files that importing them runs."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            parent = ".".join(parts[:i])
            if parent not in seen and module_file(parent):
                seen.add(parent)
                todo.extend(imported_modules(module_file(parent)))
    return {module_file(name).relative_to(SRC.parent) for name in seen}


def stage_modules(stage: str) -> set[Path]:
    """What `bnlab <stage>` runs: the CLI, and the stage module it imports by name."""
    return closure(["bnlab.cli", f"bnlab.stages.{stage}"])
