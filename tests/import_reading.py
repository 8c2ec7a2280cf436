"""Reading a module's imports as text (ast), for the tests that hold the import rules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def module_name(path: Path, packages_root: Path) -> str:
    """`<packages_root>/a/b/c.py` -> `a.b.c`; a package's `__init__.py` -> the package."""
    relative = path.relative_to(packages_root).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_in(path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) for every name an import takes, wherever the import stands (module
    level, inside functions, under TYPE_CHECKING): `from m import n` -> (m, n),
    `import m` -> (m, None)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield from ((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
