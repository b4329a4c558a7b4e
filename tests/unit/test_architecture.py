"""The package's layering, read from its imports (ast): no cycles, the core never imports bench/ or cli/.

Every ``import``/``from … import`` of a ``posrag`` module counts, at module level, inside a function (a lazy
import that closes a cycle is still a cycle) or under ``if TYPE_CHECKING:`` (a type-only import still ties the two
modules' concepts together: neither can be read or moved without the other).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import posrag

ROOT = Path(posrag.__file__).resolve().parent
LAYERS_ABOVE_THE_CORE = ("posrag.bench", "posrag.cli")
#: Modules over ~400 lines must say why in their docstring (the words "longer than" and the reason).
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(module: str, target: str) -> str | None:
    """The posrag module that ``target`` names (a module, or a package whose attribute is imported)."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def imports_of(name: str, source: str | None = None) -> set[str]:
    """The posrag modules that module ``name`` imports (its file's source, or ``source`` for a test)."""
    path = MODULES.get(name)
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    package = name if path is not None and path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("posrag"):
                    resolved = _resolve(name, alias.name)
                    if resolved:
                        found.add(resolved)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.startswith("posrag"):
                for alias in node.names:
                    resolved = _resolve(name, f"{module}.{alias.name}") or _resolve(name, module)
                    if resolved:
                        found.add(resolved)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def _is_above_core(name: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in LAYERS_ABOVE_THE_CORE)


def test_the_core_never_imports_the_benchmark_or_the_cli() -> None:
    offenders = {
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if not _is_above_core(name)
        for target in targets
        if _is_above_core(target)
    }
    assert not offenders, sorted(offenders)


def test_the_benchmark_never_imports_the_cli() -> None:
    offenders = {
        f"{n} imports {t}"
        for n, ts in GRAPH.items()
        if n.startswith("posrag.bench")
        for t in ts
        if t.startswith("posrag.cli")
    }
    assert not offenders, sorted(offenders)


def _cycle() -> list[str] | None:
    """One import cycle among posrag's modules (package ``__init__`` re-exports excepted), or None."""

    # A package's __init__ re-exporting its submodules is not a cycle of concepts: edges from an __init__ to
    # its own submodules are left out, everything else counts.
    def edges(name: str) -> set[str]:
        is_package = MODULES[name].name == "__init__.py"
        return {t for t in GRAPH[name] if not (is_package and t.startswith(name + "."))}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges(node)):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_reader_sees_lazy_relative_and_type_checking_imports() -> None:
    """The reader itself can fail: a lazy import inside a function is an edge, and so is a type-only one."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from posrag.cli import main\n"
        "def f():\n    from posrag.bench.runner import LitmBenchmark\n    return LitmBenchmark\n"
        "from ..bias import classify_bias\n"
    )
    assert imports_of("posrag.steering.planning", source) == {"posrag.cli.main", "posrag.bench.runner", "posrag.bias"}


def test_modules_stay_short_or_say_why() -> None:
    long = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            if "longer than" not in doc.lower():
                long.append(f"{name}: {lines} lines")
    assert not long, long


def _imported_after(statement: str) -> set[str]:
    heavy = "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))"
    code = f"import sys; {statement}; print(','.join({heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m for m in out.stdout.strip().split(",") if m}


def test_the_framework_adapters_import_without_torch() -> None:
    assert _imported_after("import langchain_posrag") == set()
    assert _imported_after("from langchain_posrag import PositionReorder, PosragRetriever") == set()
    assert _imported_after("from llama_index.postprocessor.posrag import PositionReorder") == set()


def _third_party_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_benchmarks_ray_executor_imports_ray() -> None:
    """Ray is an optional extra for scaling the benchmark out; the core (and the rest of bench/) never import it."""
    importers = {name for name, path in MODULES.items() if "ray" in _third_party_imports(path)}
    assert importers == {"posrag.bench.ray_runner"}
