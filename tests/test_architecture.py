"""The package's layout, read from its source: no import cycles, and applying a model never needs training.

Every `import` counts, also those inside functions (imported late to keep start-up fast): a cycle
of late imports is still two modules that cannot be understood one without the other.
"""
import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "cyclegan"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports. Importing `a.b.c` also runs the packages `a.b`
    (their __init__), except those the importer itself belongs to."""
    modules = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in imported:
                if target not in modules:
                    continue
                parts = target.split(".")
                for depth in range(2, len(parts) + 1):
                    prefix = ".".join(parts[:depth])
                    if prefix in modules and not (name + ".").startswith(prefix + ".") and prefix != name:
                        targets.add(prefix)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node):
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_graph_sees_late_imports_and_the_package_that_an_import_runs():
    graph = import_graph()
    assert "cyclegan.networks" in graph["cyclegan.training.model"]
    assert "cyclegan.evaluation" in graph["cyclegan.cli.demo"]  # `from cyclegan.evaluation.evaluate import` runs it
    assert "cyclegan.evaluation" not in graph["cyclegan.evaluation.evaluate"]  # its own package


def test_the_cycle_finder_finds_a_cycle_and_names_it():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("module", ["cyclegan.inference", "cyclegan.inference.translator", "cyclegan.inference.onnx",
                                    "cyclegan.inference.tiling", "cyclegan.inference.video",
                                    "cyclegan.inference.resolve", "cyclegan.inference.pipeline", "cyclegan.zoo",
                                    "cyclegan.serving.app", "cyclegan.checkpoint", "cyclegan.reference_format"])
def test_applying_a_model_never_imports_the_training_package(module):
    graph = import_graph()
    reachable, frontier = set(), [module]
    while frontier:
        for target in graph[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert not any(name.startswith("cyclegan.training") for name in reachable), sorted(reachable)


def test_the_inference_package_imports_neither_the_command_line_nor_the_server():
    graph = import_graph()
    inference = [name for name in graph if name == "cyclegan.inference" or name.startswith("cyclegan.inference.")]
    assert "cyclegan.inference.translator" in inference
    for module in inference:
        assert not any(target.startswith(("cyclegan.cli", "cyclegan.serving")) for target in graph[module]), module
