"""The package tree is the architecture: imports only point down.

Every import is read from the source (module level, inside functions and
under TYPE_CHECKING alike), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("cyberhub", "handlers")

# Lowest first; a package may import its own modules and packages listed before it.
LAYERS = [
    ["platform"],
    ["store"],
    ["realtime"],
    ["catalogue"],
    ["accounts"],
    ["money"],
    ["admin", "chat", "games"],
    ["handlers"],
    ["server"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for top in CODE for p in (ROOT / top).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that `path` imports, resolved to module names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in modules:
                found.add(name)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "handlers":
        return "handlers"
    return parts[1] if len(parts) > 1 else "cyberhub"


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_between_modules():
    assert find_cycle(import_graph()) is None


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        packages.setdefault(package_of(module), set()).update(package_of(t) for t in targets)
    for package, targets in packages.items():
        targets.discard(package)
    assert find_cycle(packages) is None


def test_every_package_has_a_layer():
    listed = {p for layer in LAYERS for p in layer}
    present = {package_of(m) for m in project_modules()} - {"cyberhub"}
    assert present <= listed, f"add {present - listed} to LAYERS (and to README's layout section)"


def test_imports_only_point_down():
    rank = {package: i for i, layer in enumerate(LAYERS) for package in layer}
    wrong = []
    for module, targets in import_graph().items():
        here = package_of(module)
        for target in targets:
            there = package_of(target)
            if there != here and rank.get(there, -1) >= rank.get(here, -1):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_domain_code_never_imports_handlers():
    offenders = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module.startswith("cyberhub.") and package_of(module) != "server"
        for target in targets if target.startswith("handlers")
    ]
    assert offenders == []


def test_the_checks_see_a_cycle_and_a_wrong_import():
    """The graph walk itself is what every check above relies on."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "cyberhub.money.wallet" in graph["cyberhub.money.openings"]
    assert "cyberhub.store.db" in graph["cyberhub.money.wallet"]
