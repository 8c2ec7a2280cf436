"""The layer's requirements.txt, derived from pyproject.toml's runtime dependencies.

Dependencies are declared once, in pyproject.toml. `sam build` reads the layer's list from
`layers/common/requirements.txt`, so that file is generated from pyproject (`make
requirements`) and a test fails when the two disagree. boto3 and botocore are left out:
the Lambda runtime provides them (docs/decisions.md, "What the layer ships").

    python -m kontext_tools.layer_requirements          # rewrite the file
    python -m kontext_tools.layer_requirements --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
LAYER_REQUIREMENTS = PROJECT_ROOT / "layers" / "common" / "requirements.txt"

# Provided by every Python Lambda runtime; shipping them would double the layer's size.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})

HEADER = """\
# Generated from pyproject.toml by `make requirements`; do not edit by hand.
# The runtime dependencies of kontext_pipeline, less what the Lambda runtime provides
# (boto3, botocore). `sam build` installs these into the layer's python/ folder.
"""


def distribution_name(requirement: str) -> str:
    """The normalised project name of a requirement string (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """pyproject's [project].dependencies, as declared."""
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return [str(item) for item in project["dependencies"]]


def layer_requirements(pyproject: Path = PYPROJECT) -> str:
    """The text requirements.txt must hold."""
    kept = [
        requirement
        for requirement in runtime_dependencies(pyproject)
        if distribution_name(requirement) not in RUNTIME_PROVIDED
    ]
    return HEADER + "".join(f"{requirement}\n" for requirement in kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = parser.parse_args(argv)
    wanted = layer_requirements()
    current = LAYER_REQUIREMENTS.read_text(encoding="utf-8") if LAYER_REQUIREMENTS.exists() else ""
    if args.check:
        if current != wanted:
            print(f"{LAYER_REQUIREMENTS} is stale: run `make requirements`", file=sys.stderr)
            return 1
        return 0
    LAYER_REQUIREMENTS.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
