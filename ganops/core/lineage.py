"""Which source files each stage's artifact depends on, read from the code itself.

The closure of `ganops` modules a stage imports (at module level or inside functions) is what can
change its output. DVC's `deps` must cover it (a test checks dvc.yaml against it) and Dagster's
code version is its hash, so editing a network retrains through either door, and editing the
dataset code does not go unnoticed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
# Modules that shape how a run is observed, not what it writes: following them would make every
# artifact stale when a log line changes.
RUN_ONLY = frozenset({"ganops/tracking/runs.py", "ganops/tracking/store.py", "ganops/core/locks.py",
                      "ganops/core/progress.py",
                      "ganops/commands/cli.py", "ganops/__main__.py",
                      # how a training is started on its ranks, and a finished artifact read back
                      "ganops/core/launch.py", "ganops/stages/on_disk.py",
                      # the registry's decision and the promotion gate act on MLflow, not on any artifact
                      "ganops/tracking/registry.py", "ganops/tracking/checks.py"})


_IMPL = re.compile(r"^ganops(\.\w+)+:\w+$")
# Modules that import implementations by name from a registry table ("module:Class" strings): reaching
# one reaches every implementation its table names. The tables themselves are only declarations (the
# schema reads them), so a stage that merely validates parameters does not depend on every network.
_DISPATCH = {"ganops.models": "ganops.catalog.families", "ganops.embed.api": "ganops.catalog.encoders"}


def _registry_impls(table: str) -> set[str]:
    path = _module_file(table)
    tree = ast.parse(path.read_text(), filename=str(path)) if path else ast.Module(body=[], type_ignores=[])
    return {n.value.partition(":")[0] for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and _IMPL.match(n.value)}


def _module_file(dotted: str) -> Path | None:
    parts = dotted.split(".")
    if parts[0] != "ganops":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache      # each stage's walk meets the same files: parse each once per process, as stage_files
def _imports(path: Path) -> frozenset[str]:
    """Dotted names of the ganops modules a file imports anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
    return frozenset(n for n in names if n.split(".")[0] == "ganops")


def _with_parents(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@functools.cache
def stage_files(stage: str) -> tuple[str, ...]:
    """Repository-relative paths of the ganops source files the stage's output depends on."""
    todo, seen = [f"ganops.stages.{stage}"], set()
    files: set[str] = set()
    while todo:
        for name in _with_parents(todo.pop()):
            path = _module_file(name)
            if path is None or name in seen:
                continue
            seen.add(name)
            rel = _rel(path)
            if rel in RUN_ONLY:
                continue
            files.add(rel)
            todo.extend(_imports(path))
            if name in _DISPATCH:
                todo.extend(_registry_impls(_DISPATCH[name]))
    return tuple(sorted(files))


@functools.cache
def code_version(stage: str) -> str:
    """A hash of the source the stage's output depends on (Dagster's code version; recorded in meta.json)."""
    h = hashlib.sha256()
    for rel in stage_files(stage):
        h.update(rel.encode())
        h.update(hashlib.sha256((PACKAGE.parent / rel).read_bytes()).digest())
    return h.hexdigest()[:16]
