"""SAM -> CloudFormation with SAM's own translator (what `sam deploy` uses); the built
folders the template points at become code in S3, and each function's folder is noted."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODE_BUCKET = "kontext-local-code"


@dataclass(frozen=True)
class FunctionSource:
    """Where a function's built code lives on disk, from the template's CodeUri, Handler
    and Layers (each layer's built folder, as Lambda would mount it at /opt)."""

    logical_id: str
    code_dir: Path
    handler: str
    layer_dirs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Translation:
    """The CloudFormation template, and the built folders of its functions and layers."""

    cfn: dict[str, Any]
    functions: dict[str, FunctionSource]  # by logical id
    layer_dirs: dict[str, Path]  # by logical id


class _NoManagedPolicies:
    # The template only uses SAM policy templates, which need no IAM look-up.
    def load(self) -> dict[str, str]:
        return {}


def translate_template(
    sam: dict[str, Any], root: Path, parameters: Mapping[str, str]
) -> Translation:
    """SAM -> CloudFormation with SAM's translator; local paths become code in S3.

    `sam` is the built template as loaded (changed in place); `root` its folder."""
    from samtranslator.translator.transform import transform  # noqa: PLC0415 - local run only

    # The translator warns about its own usage metrics, which only `sam` publishes.
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)

    layer_dirs = {
        logical_id: root / str(resource["Properties"]["ContentUri"])
        for logical_id, resource in _resources_of(sam, "AWS::Serverless::LayerVersion")
    }
    functions = _function_sources(sam, root, layer_dirs)
    _code_from_bucket(sam, root)
    cfn: dict[str, Any] = transform(sam, dict(parameters), _NoManagedPolicies())
    return Translation(cfn, functions, layer_dirs)


def _resources_of(sam: Mapping[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource)
        for logical_id, resource in sam.get("Resources", {}).items()
        if resource["Type"] == kind
    ]


def _function_sources(
    sam: Mapping[str, Any], root: Path, layer_dirs: Mapping[str, Path]
) -> dict[str, FunctionSource]:
    handler_default = sam.get("Globals", {}).get("Function", {}).get("Handler")
    layers_default = sam.get("Globals", {}).get("Function", {}).get("Layers", [])
    functions = {}
    for logical_id, resource in _resources_of(sam, "AWS::Serverless::Function"):
        properties = resource.get("Properties", {})
        layers = properties.get("Layers", layers_default)
        functions[logical_id] = FunctionSource(
            logical_id,
            root / str(properties["CodeUri"]),
            str(properties.get("Handler", handler_default)),
            tuple(layer_dirs[item["Ref"]] for item in layers if "Ref" in item),
        )
    return functions


def _code_from_bucket(sam: Mapping[str, Any], root: Path) -> None:
    """Functions' and layers' code from the code bucket; state machines' ASL inline."""
    for logical_id, resource in sam.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://{CODE_BUCKET}/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://{CODE_BUCKET}/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in properties:
            definition_path = root / str(properties.pop("DefinitionUri"))
            properties["Definition"] = json.loads(definition_path.read_text(encoding="utf-8"))


def zip_folder(folder: Path) -> bytes:
    """A folder as Lambda takes it: a zip with the folder's content at its root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()
