"""The package's import layering (docs/design.md, "architecture"): each layer imports only the
layers above it, and no modules import each other in a loop, lazily (inside a function) or not.
Imports under ``if TYPE_CHECKING:`` are hints only and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import rlhf

ROOT = Path(rlhf.__file__).parent
LAYERS = [
    ("__init__", "config", "sections", "progress"),
    ("data",),
    ("models",),
    ("losses",),
    ("rollout",),
    ("eval",),
    ("recipes",),
    ("feedback",),
    ("toyworld", "realtask"),
    ("demo", "serve"),
    ("cli", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("rlhf", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The rlhf modules ``path`` imports anywhere in it, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    hints = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("rlhf"):
            for alias in node.names:  # `from rlhf.recipes import ppo` imports the module rlhf.recipes.ppo
                name = f"{node.module}.{alias.name}"
                out.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.startswith("rlhf")}
    return out & set(modules)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_every_package_has_a_layer():
    assert {_layer(m) for m in _modules()} <= set(RANK), "a new package: give it a layer in LAYERS and docs"


def test_no_layer_imports_a_layer_below_it():
    upward = [
        f"{a} -> {b}" for a, targets in _graph().items() for b in targets if RANK[_layer(b)] > RANK[_layer(a)]
    ]
    assert upward == []


def test_no_import_cycles():
    graph, seen, cycles = _graph(), set(), []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen.add(node)

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    assert cycles == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The parser sees lazy imports and skips type-checking ones (so the tests above can fail)."""
    (tmp_path / "m.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from rlhf.cli import main\n"
        "def f():\n    from rlhf.recipes import ppo\n"
    )
    found = _imports(tmp_path / "m.py", {"rlhf.cli": None, "rlhf.recipes.ppo": None, "rlhf.recipes": None})
    assert found == {"rlhf.recipes.ppo"}
