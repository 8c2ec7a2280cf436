"""The tools' modules import one another without circles.

Every import counts, at module level, inside functions and under TYPE_CHECKING alike: a
circle through a type is still two modules that must be read together.
"""

from __future__ import annotations

from tests.conftest import ROOT
from tests.import_reading import imports_in, module_name

TOOLS = ROOT / "src" / "kontext_tools"


def import_graph() -> dict[str, set[str]]:
    """Each tools module and the tools modules it imports (a name imported from a package
    counts as the submodule of that name when there is one)."""
    modules = {module_name(path, TOOLS.parent): path for path in TOOLS.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for module, imported in imports_in(path):
            submodule = f"{module}.{imported}"
            if imported and submodule in modules:
                found.add(submodule)
            elif module in modules:
                found.add(module)
        graph[name] = found - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle found by a depth-first walk, each as the modules around it."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                walk(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    return found


def test_the_tools_have_no_import_circles() -> None:
    # Given every import between the tools' modules / When circles are looked for
    # Then there are none (a package's __init__ re-exporting its own modules aside)
    real = [
        circle
        for circle in circles(import_graph())
        if not any(module.rsplit(".", 1)[0] == other for module in circle for other in circle)
    ]
    assert real == []


def test_a_circle_is_found() -> None:
    # Given two modules that import each other, and a third that imports one of them
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    # When circles are looked for / Then the two are named, the third is not in one
    assert circles(graph) == [["a", "b", "a"]]
