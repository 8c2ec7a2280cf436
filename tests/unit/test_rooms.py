"""The layer's rooms and the only ways their imports may go: down the README's arrows.

Every import of the package counts, at module level, inside functions (the Runtime's
imports on first use) and under TYPE_CHECKING alike: a type that climbs up is a room
that knows too much.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from tests import import_reading
from tests.conftest import ROOT

PACKAGE = ROOT / "layers" / "common" / "kontext_pipeline"
# Each room and the rooms directly below it; a room may import what it reaches from here.
ARROWS: dict[str, tuple[str, ...]] = {
    "top": ("steps", "intake"),  # lambda_entry.py, runtime.py: they wire the rooms up
    "steps": ("notifications",),
    "intake": ("notifications",),  # the HTTP front door, beside the steps
    "notifications": ("jobs", "storage"),
    "jobs": ("model_queue",),
    "model_queue": ("core",),
    "storage": ("core",),
    "core": (),
}


def room_of(module: str) -> str:
    """`kontext_pipeline.jobs.ledger` -> jobs; a module at the package's top -> top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ARROWS else "top"


@cache
def reachable_from(room: str) -> frozenset[str]:
    below: set[str] = set()
    for lower in ARROWS[room]:
        below |= {lower} | reachable_from(lower)
    return frozenset(below)


def module_name(path: Path) -> str:
    return import_reading.module_name(path, PACKAGE.parent)


def imports_of(path: Path) -> set[str]:
    """Every module of the package this file imports, wherever the import stands."""
    return {
        f"{module}.{name}" if name else module
        for module, name in import_reading.imports_in(path)
        if module.startswith("kontext_pipeline")
    }


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_room_is_on_the_drawing() -> None:
    # Given the package's folders / Then each is a room with its arrows, and no room is empty
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert folders == set(ARROWS) - {"top"}
    # And the README's Layout draws the same rooms
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"{room}/" in readme for room in folders)


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_room_and_the_rooms_below_it(path: Path) -> None:
    # Given a module of the layer and its room
    room = room_of(module_name(path))
    # When its imports of the package are read
    climbing = {
        imported
        for imported in imports_of(path)
        if room_of(imported) != room and room_of(imported) not in reachable_from(room)
    }
    # Then none reaches a room beside or above its own
    assert climbing == set(), f"{room} may import only {sorted(reachable_from(room))}"


def test_a_climbing_import_is_found() -> None:
    # Given storage importing the jobs table (beside it, not below it)
    # When the rule is asked / Then it says no, while core stays reachable
    assert "jobs" not in reachable_from("storage")
    assert reachable_from("steps") == frozenset(set(ARROWS) - {"top", "steps", "intake"})
