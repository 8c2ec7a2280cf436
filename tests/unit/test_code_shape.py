"""The shape the code keeps (issue 15): rooms a newcomer can read, functions that fit a screen.

Complexity has its own gate (`xenon` in `make lint`); these are the limits it does not see.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PRODUCTION = (ROOT / "layers" / "common" / "kontext_pipeline", ROOT / "src", ROOT / "functions")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40


def production_modules() -> list[Path]:
    return sorted(path for root in PRODUCTION for path in root.rglob("*.py"))


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_production_code_is_found() -> None:
    # Given the production roots / When they are listed / Then they hold the code
    names = {path.name for path in production_modules()}
    assert {"errors.py", "app.py", "__init__.py"} <= names


@pytest.mark.parametrize("path", production_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_300_lines(path: Path) -> None:
    # Given a production module
    # When its lines are counted
    lines = len(path.read_text(encoding="utf-8").splitlines())
    # Then it fits the limit: past it, the module holds more than one room
    assert lines <= MAX_MODULE_LINES, f"{lines} lines"


@pytest.mark.parametrize("path", production_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_over_40_lines(path: Path) -> None:
    # Given a production module
    # When its functions are measured
    found = long_functions(path)
    # Then each fits the limit
    assert found == []


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Layout", 1)[1].split("\n## ", 1)[0]


def rooms() -> list[str]:
    """The names a newcomer looks up: each module and package of the layer and the tools
    (as `name.py` or `name/`), and each step (by its name, as the functions are named)."""
    layer = ROOT / "layers" / "common" / "kontext_pipeline"
    tools = ROOT / "src" / "kontext_tools"
    found = [
        f"{path.name}/" if path.is_dir() else path.name
        for root in (layer, tools)
        for path in root.iterdir()
        if (path.suffix == ".py" and path.name != "__init__.py")
        or (path.is_dir() and (path / "__init__.py").exists())
    ]
    steps = [path.stem for path in (layer / "steps").glob("*.py") if path.stem != "__init__"]
    return sorted(found + steps)


@pytest.mark.parametrize("room", rooms())
def test_the_readme_layout_names_every_room(room: str) -> None:
    # Given the README's Layout section
    layout = layout_section()
    # When a module, package or step of the tree is looked up in it
    found = re.search(rf"(?<![\w/]){re.escape(room)}(?!\w)", layout)
    # Then it is there
    assert found, f"{room} is not in the README's Layout"


def test_every_module_the_readme_layout_names_exists() -> None:
    # Given the module names in the README's Layout section
    named = set(re.findall(r"\b(\w+\.py)\b", layout_section()))
    # When the tree's Python files are listed (not the virtualenvs or the builds)
    present = {
        path.name
        for root in (*PRODUCTION, ROOT / "tests", ROOT / "benchmarks")
        for path in root.rglob("*.py")
    }
    # Then each named module is one of them: no room the Layout names is gone
    assert named - present == set()
