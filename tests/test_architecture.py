"""The package's layout, read from its source: no import cycles, applying a model never needs training,
and each layer imports only the layers below it (docs/DEVELOPMENT.md's map).

Every `import` counts, also those inside functions (imported late to keep start-up fast): a cycle
of late imports is still two modules that cannot be understood one without the other.
"""
import ast
import functools
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "cyclegan"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)  # read once per session: the source does not change under the tests
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


def reachable(graph: dict[str, set[str]], module: str) -> set[str]:
    """Every package module that importing `module` can run, directly or through others."""
    seen, frontier = set(), [module]
    while frontier:
        for target in graph[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


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
    reached = reachable(import_graph(), module)
    assert not any(name.startswith("cyclegan.training") for name in reached), sorted(reached)


def test_the_inference_package_imports_neither_the_command_line_nor_the_server():
    graph = import_graph()
    inference = [name for name in graph if name == "cyclegan.inference" or name.startswith("cyclegan.inference.")]
    assert "cyclegan.inference.translator" in inference
    for module in inference:
        assert not any(target.startswith(("cyclegan.cli", "cyclegan.serving")) for target in graph[module]), module


# The bottom of the map: options, file formats, networks and the helpers every layer uses.
CORE = ["cyclegan.config", "cyclegan.errors", "cyclegan.fileio", "cyclegan.directions", "cyclegan.imageconv",
        "cyclegan.device", "cyclegan.distributed", "cyclegan.download", "cyclegan.layers", "cyclegan.networks",
        "cyclegan.losses", "cyclegan.augment", "cyclegan.reference_format", "cyclegan.checkpoint", "cyclegan.zoo",
        "cyclegan.hub", "cyclegan.tuning"]
UPPER = ["cyclegan.data", "cyclegan.training", "cyclegan.inference", "cyclegan.evaluation", "cyclegan.serving",
         "cyclegan.cli", "cyclegan.studies"]
# package -> the packages nothing in it may reach, directly or through other modules.
LAYERS = {
    **{module: UPPER for module in CORE},
    "cyclegan.data": ["cyclegan.inference", "cyclegan.training", "cyclegan.evaluation", "cyclegan.serving",
                      "cyclegan.cli", "cyclegan.studies"],
    "cyclegan.inference": ["cyclegan.training", "cyclegan.evaluation", "cyclegan.serving", "cyclegan.cli",
                           "cyclegan.studies"],
    "cyclegan.evaluation": ["cyclegan.training", "cyclegan.serving", "cyclegan.cli", "cyclegan.studies"],
    "cyclegan.training": ["cyclegan.serving", "cyclegan.cli", "cyclegan.studies"],
    "cyclegan.serving": ["cyclegan.training", "cyclegan.evaluation", "cyclegan.cli", "cyclegan.studies"],
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_layer_reaches_only_the_layers_below_it(package):
    graph = import_graph()
    members = [name for name in graph if inside(name, package)]
    assert members, f"{package} is not in the package any more: update LAYERS and docs/DEVELOPMENT.md"
    for module in members:
        above = sorted(target for target in reachable(graph, module)
                       if any(inside(target, forbidden) for forbidden in LAYERS[package]))
        assert not above, f"{module} reaches {above}"


def test_serving_translates_through_the_inference_package():
    graph = import_graph()
    assert "cyclegan.inference" in graph["cyclegan.serving.app"]
    assert not any(inside(target, "cyclegan.training") for target in reachable(graph, "cyclegan.serving.app"))


def test_studies_are_driven_only_by_the_command_line():
    graph = import_graph()
    importers = sorted(name for name, targets in graph.items() if not inside(name, "cyclegan.studies")
                       and any(inside(target, "cyclegan.studies") for target in targets))
    assert importers == ["cyclegan.cli.experiment", "cyclegan.cli.study"]


def test_only_the_entry_point_and_the_studies_import_the_command_line():
    # A study counts a run's iterations per epoch by parsing its `cyclegan train` flags as the CLI does.
    graph = import_graph()
    importers = sorted(name for name, targets in graph.items() if not inside(name, "cyclegan.cli")
                       and any(inside(target, "cyclegan.cli") for target in targets))
    assert importers == ["cyclegan.__main__", "cyclegan.studies.suites"]


def test_the_layer_rules_catch_a_forbidden_import_through_another_module():
    graph = {"cyclegan.data.a": {"cyclegan.data.b"}, "cyclegan.data.b": {"cyclegan.inference.c"},
             "cyclegan.inference.c": set()}
    assert reachable(graph, "cyclegan.data.a") == {"cyclegan.data.b", "cyclegan.inference.c"}


def test_no_unused_import_or_undefined_name_in_the_code():
    # pyflakes finds imports left behind by a change and names used but never defined, in the
    # package, its tests and its benchmarks alike.
    import io

    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    root = Path(__file__).resolve().parents[1]
    warnings, errors = io.StringIO(), io.StringIO()
    count = checkRecursive([str(root / folder) for folder in ("src", "tests", "benchmarks")], Reporter(warnings, errors))
    assert (count, warnings.getvalue(), errors.getvalue()) == (0, "", "")
