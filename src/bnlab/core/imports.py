"""Which of bnlab's modules a module imports, read from the code with ``ast`` (nothing is run).

Every import counts, at module level or inside a function (conservative: a function may run),
except inside a module-level ``__getattr__`` (bnlab/__init__.py's lazy ``KerasMLPClassifier``,
which runs only when that attribute is used). So do the module names given to
``set_forkserver_preload`` (the local workers' forkserver imports them). Two users: dvc.yaml's
deps (a test computes each stage's closure) and the per-job cache's code fingerprint (the
closure of what a training job runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]  # the folder that holds the bnlab package


def module_file(name: str, src: Path = SRC) -> Path | None:
    path = src / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, src: Path = SRC) -> set[str]:
    """The bnlab modules that the file at ``path`` imports."""
    found = set()
    tree = ast.parse(path.read_text())
    lazy = {
        id(node)
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef) and fn.name == "__getattr__"
        for node in ast.walk(fn)
    }
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "set_forkserver_preload":
            found |= _preloaded(node, tree, src)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("bnlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bnlab"):
            found.add(node.module)
            # `from bnlab.data import mnist` imports the module bnlab.data.mnist
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}", src)}
    return found


def _preloaded(call: ast.Call, tree: ast.Module, src: Path) -> set[str]:
    """The module names a ``set_forkserver_preload`` call gives, literally or as a module-level
    constant."""
    names = {c.id for c in ast.walk(call) if isinstance(c, ast.Name)}
    values = [c for c in ast.walk(call) if isinstance(c, ast.Constant)]
    values += [
        a.value
        for a in tree.body
        if isinstance(a, ast.Assign)
        and isinstance(a.value, ast.Constant)
        and any(getattr(t, "id", None) in names for t in a.targets)
    ]
    return {c.value for c in values if isinstance(c.value, str) and module_file(c.value, src)}


def closure(roots: list[str], src: Path = SRC) -> set[Path]:
    """Every bnlab source file the roots import, directly or through other modules, with the
    packages' __init__ files that importing them runs; paths relative to ``src``'s parent."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            parent = ".".join(parts[:i])
            if parent not in seen and module_file(parent, src):
                seen.add(parent)
                todo.extend(imported_modules(module_file(parent, src), src))
    return {module_file(name, src).relative_to(src.parent) for name in seen}
