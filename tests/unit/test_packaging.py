"""What `sam build` ships: the layer as Lambda mounts it, for the template's architecture.

These read the release build (`make build`, .aws-sam/build), which `make unit` makes
first: the artifact `make deploy` uploads is the one checked here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from kontext_tools.layer_requirements import (
    LAYER_REQUIREMENTS,
    RUNTIME_PROVIDED,
    distribution_name,
    layer_requirements,
    runtime_dependencies,
)
from kontext_tools.local.build import RUNTIME_VERSION, find_runtime_python
from kontext_tools.local.stack import load_template
from tests.conftest import ROOT

RELEASE_BUILD = ROOT / ".aws-sam" / "build"
LAYER = RELEASE_BUILD / "CommonLayer" / "python"
# Lambda's limit for a function and all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# ELF e_machine values (the ELF specification): what a compiled extension was built for.
ELF_MACHINES = {"arm64": 183, "x86_64": 62}
# A .pyc's name and header (PEP 552): the runtime's tag and magic number, then its flags.
CACHE_TAG = "cpython-" + RUNTIME_VERSION.replace(".", "")
MAGIC_OF_THE_RUNTIME = (
    "import importlib.util, sys; sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"
)
CHECKED_HASH_FLAGS = 0b11  # hash-based, and checked against the source


@pytest.fixture(scope="module")
def layer() -> Path:
    assert LAYER.is_dir(), "no release build: run `make build` first"
    return LAYER


def _template_architecture() -> str:
    return str(load_template(ROOT / "template.yaml")["Parameters"]["Architecture"]["Default"])


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def _distributions(layer: Path) -> set[str]:
    names = set()
    for info in layer.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        names.add(distribution_name(name))
    return names


def test_the_layers_requirements_are_derived_from_pyproject() -> None:
    # Given the dependencies declared once, in pyproject.toml
    # When the layer's requirements.txt is compared with what they derive
    # Then they agree (`make requirements` rewrites it)
    assert LAYER_REQUIREMENTS.read_text(encoding="utf-8") == layer_requirements()


def test_the_layer_leaves_boto3_to_the_lambda_runtime() -> None:
    # Given the layer's requirements
    required = {
        distribution_name(line)
        for line in LAYER_REQUIREMENTS.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    # When they are compared with pyproject's runtime dependencies
    # Then the SDK the runtime provides is not among them, and everything else is
    assert required.isdisjoint(RUNTIME_PROVIDED)
    declared = {distribution_name(item) for item in runtime_dependencies()}
    assert required == declared - RUNTIME_PROVIDED


def test_the_built_layer_puts_the_package_and_every_dependency_on_opt_python(layer: Path) -> None:
    # Given the layer as sam built it (Lambda mounts it at /opt, so python/ is /opt/python)
    # When its top folder is read
    # Then the package sits at python/kontext_pipeline, not one folder deeper
    assert (layer / "kontext_pipeline" / "__init__.py").is_file()
    assert not (layer / "python").exists()
    # And every runtime dependency is installed beside it
    installed = _distributions(layer)
    declared = {distribution_name(item) for item in runtime_dependencies()} - RUNTIME_PROVIDED
    assert declared - installed == set()


def test_the_layer_holds_only_runtime_code(layer: Path) -> None:
    # Given every module of the package in the layer
    modules = list((layer / "kontext_pipeline").rglob("*.py"))
    assert modules
    # When each module's imports are read
    # Then none of the tools is there, and nothing there imports them
    assert not (layer / "kontext_tools").exists()
    for module in modules:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not {name for name in imported if name.startswith("kontext_tools")}, module


def test_compiled_dependencies_are_built_for_the_templates_architecture(layer: Path) -> None:
    # Given the template's architecture (arm64 by default)
    architecture = _template_architecture()
    # When every compiled extension in the layer is read
    extensions = sorted(layer.rglob("*.so"))
    names = {path.name for path in extensions}
    # Then pydantic-core and cryptography are among them, all for that architecture
    assert any(name.startswith("_pydantic_core") for name in names)
    assert any(name.startswith("_rust") for name in names)  # cryptography's bindings
    wrong = [p for p in extensions if _elf_machine(p) != ELF_MACHINES[architecture]]
    assert wrong == []
    tagged = [p.name for p in extensions if re.search(r"-(x86_64|aarch64)-linux-gnu", p.name)]
    expected_tag = "aarch64" if architecture == "arm64" else "x86_64"
    assert all(expected_tag in name for name in tagged)


def test_the_layer_stays_under_lambdas_unzipped_limit(layer: Path) -> None:
    # Given the layer and the largest function folder, measured
    layer_bytes = sum(path.stat().st_size for path in layer.rglob("*") if path.is_file())
    functions = [d for d in RELEASE_BUILD.iterdir() if d.is_dir() and d.name.endswith("Function")]
    largest_function = max(
        sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        for folder in functions
    )
    print(f"layer unzipped: {layer_bytes / 1e6:.1f} MB; largest function: {largest_function} B")
    # When their unzipped sizes are added
    # Then together they stay under Lambda's 250 MB
    assert layer_bytes + largest_function < LAMBDA_UNZIPPED_LIMIT_BYTES


def test_every_package_folder_is_listed_for_setuptools() -> None:
    # Given the package folders under both roots (the layer's and the tools')
    folders = {
        ".".join(init.parent.relative_to(root).parts)
        for root in (ROOT / "layers" / "common", ROOT / "src")
        for init in root.glob("**/__init__.py")
        if "__pycache__" not in init.parts
    }
    # When pyproject.toml's explicit package list is read
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    # Then it names every one: an unlisted package is missing from a non-editable install
    assert set(setuptools["packages"]) == folders


def test_every_module_ships_its_bytecode_for_the_runtimes_python(layer: Path) -> None:
    # Given every module the release build ships (Lambda mounts the code read-only, so a
    # module without its bytecode is compiled again at every cold start)
    modules = sorted(RELEASE_BUILD.rglob("*.py"))
    assert (layer / "kontext_pipeline" / "steps" / "collect_outputs.py") in modules
    magic = subprocess.run(
        [str(find_runtime_python()), "-c", MAGIC_OF_THE_RUNTIME],
        capture_output=True,
        check=True,
    ).stdout
    # When the bytecode beside each is read
    missing, stale_on_unzip = [], []
    for module in modules:
        cached = module.parent / "__pycache__" / f"{module.stem}.{CACHE_TAG}.pyc"
        if not cached.is_file() or cached.read_bytes()[:4] != magic:
            missing.append(module)
        elif int.from_bytes(cached.read_bytes()[4:8], "little") != CHECKED_HASH_FLAGS:
            stale_on_unzip.append(module)
    # Then it is there, for the runtime's Python, and checked by its source's hash rather
    # than by file times a zip does not keep
    assert missing == []
    assert stale_on_unzip == []
