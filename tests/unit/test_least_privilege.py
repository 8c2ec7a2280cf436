"""Least privilege, measured: for every function, the AWS actions its code calls and the
actions its role grants (SAM's translation of template.yaml) are the same set.

The calls are read from the code, not listed by hand: the modules a handler reaches
(its imports, and the Runtime members it uses, followed through their imports), the
boto3 operations called on a client in them (checked against botocore's model), and the
calls libraries make with a client the code hands them (LIBRARY_CALLS). A function
added, or a client call added to an adapter, changes the expected set by itself.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT
from tests.unit.test_template import CFN, TEMPLATE, actions_of

LAYER = ROOT / "layers" / "common"
RUNTIME = "kontext_pipeline.runtime"
# Attribute names the Runtime gives its clients -> (boto3 service, IAM prefix).
CLIENTS = {
    "s3": ("s3", "s3"),
    "dynamodb": ("dynamodb", "dynamodb"),
    "sns": ("sns", "sns"),
    "events": ("events", "events"),
    "stepfunctions": ("stepfunctions", "states"),
    "secretsmanager": ("secretsmanager", "secretsmanager"),
}
# Operations whose IAM action has another name (Service Authorization Reference).
RENAMED = {"s3:HeadObject": "s3:GetObject", "s3:UploadFileobj": "s3:PutObject"}
# What libraries call with the client the code hands them (their documented permissions).
LIBRARY_CALLS = {
    # Powertools Idempotency, "IAM Permissions".
    "DynamoDBPersistenceLayer(": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
    # Powertools Parameters, "IAM Permissions" (SecretsProvider.get).
    "SecretsProvider(": {"secretsmanager:GetSecretValue"},
    # boto3's transfer manager: multipart uploads (PutObject) it aborts when one fails.
    ".upload_fileobj(": {"s3:PutObject", "s3:AbortMultipartUpload"},
    # A presigned read is authorised as the signer's GetObject when it is used.
    'generate_presigned_url("get_object"': {"s3:GetObject"},
}
# A transaction is authorised item by item.
TRANSACT_ITEMS = {
    '"Put": {': "dynamodb:PutItem",
    '"Update": {': "dynamodb:UpdateItem",
    '"Delete": {': "dynamodb:DeleteItem",
    '"ConditionCheck": {': "dynamodb:ConditionCheckItem",
}
# Granted so that a missing object reads as 404 rather than 403 (docs/decisions.md, "S3
# permissions"): expected exactly when the code tells a missing object apart.
MISSING_OBJECT_CHECKS = ("is_missing_object(",)


def module_file(module: str) -> Path:
    base = LAYER / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _runtime_imports(tree: ast.AST) -> list[ast.AST]:
    """The tree's nodes, without what is imported for type checking only."""
    nodes: list[ast.AST] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes += list(node.orelse)
            continue
        nodes.append(node)
        nodes += _runtime_imports(node)
    return nodes


Unit = tuple[str, str]  # (module, top-level name); name "" is the whole handler


@cache
def module_units(module: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """A layer module's top-level definitions (name -> source) and the names it imports
    from the layer at run time (local name -> (module, name))."""
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    definitions = {
        node.name: ast.unparse(node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    return definitions, layer_imports(tree)


def layer_imports(tree: ast.AST) -> dict[str, tuple[str, str]]:
    return {
        alias.asname or alias.name: (str(node.module), alias.name)
        for node in _runtime_imports(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kontext_pipeline")
        for alias in node.names
    }


def resolve(module: str, name: str) -> set[Unit]:
    """Where `name`, as `module` knows it, is defined (a submodule: all of it)."""
    if module == RUNTIME:
        return set()
    if module_file(f"{module}.{name}").exists():
        return {(f"{module}.{name}", n) for n in module_units(f"{module}.{name}")[0]}
    definitions, imports = module_units(module)
    if name in definitions:
        return {(module, name)}
    if name in imports:
        return resolve(*imports[name])
    return set()


def names_in(source: str) -> set[str]:
    tree = ast.parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }


def runtime_uses(source: str, inside_runtime: bool) -> set[str]:
    """The Runtime members used: `runtime.X` in the handler and the layer, `self.X` in
    the Runtime itself."""
    owner = "self" if inside_runtime else "runtime"
    return {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == owner
        and node.attr in runtime_members()
    }


@cache
def runtime_members() -> dict[str, str]:
    tree = ast.parse(module_file(RUNTIME).read_text(encoding="utf-8"))
    runtime = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Runtime")
    return {n.name: ast.unparse(n) for n in runtime.body if isinstance(n, ast.FunctionDef)}


def named_by(unit: Unit, source: str) -> set[Unit]:
    """The definitions one definition names: in its module, imported (at its top or in
    its body), or Runtime members it uses."""
    module = unit[0]
    imports = layer_imports(ast.parse(source))
    if module not in ("", RUNTIME):
        imports = {**module_units(module)[1], **imports}
    reached = {(RUNTIME, name) for name in runtime_uses(source, module == RUNTIME)}
    for name in names_in(source):
        if module not in ("", RUNTIME):
            reached |= resolve(module, name)
        if name in imports:
            reached |= resolve(*imports[name])
    return reached


def unit_source(unit: Unit) -> str:
    module, name = unit
    return runtime_members()[name] if module == RUNTIME else module_units(module)[0][name]


def reached_sources(function_dir: Path) -> list[str]:
    """The handler, and every definition of the layer it reaches."""
    sources: dict[Unit, str] = {("", ""): (function_dir / "app.py").read_text(encoding="utf-8")}
    pending = list(sources)
    while pending:
        unit = pending.pop()
        for found in named_by(unit, sources[unit]) - sources.keys():
            sources[found] = unit_source(found)
            pending.append(found)
    return list(sources.values())


@cache
def operations(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name, for one service."""
    client = boto3.client(service, region_name="us-east-1")
    return dict(client.meta.method_to_api_mapping)


def actions_called(source: str) -> set[str]:
    called: set[str] = set()
    pattern = r"\b(" + "|".join(CLIENTS) + r")\.([a-z_0-9]+)\("
    for client, method in re.findall(pattern, source):
        service, prefix = CLIENTS[client]
        if method == "transact_write_items":
            called |= {action for item, action in TRANSACT_ITEMS.items() if item in source}
        elif method in operations(service):
            action = f"{prefix}:{operations(service)[method]}"
            called.add(RENAMED.get(action, action))
    called |= {
        action for call, granted in LIBRARY_CALLS.items() if call in source for action in granted
    }
    if ("VersionId=" in source or "object_request(" in source) and called & {"s3:GetObject"}:
        called.add("s3:GetObjectVersion")  # a read pinned to a version
    return called


def functions() -> dict[str, Path]:
    return {
        logical_id: ROOT / resource["Properties"]["CodeUri"]
        for logical_id, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def expected_actions(logical_id: str, function_dir: Path) -> set[str]:
    sources = reached_sources(function_dir)
    called = set().union(*(actions_called(source) for source in sources))
    tells_missing_apart = any(check in s for s in sources for check in MISSING_OBJECT_CHECKS)
    if tells_missing_apart and called & {"s3:GetObject"}:
        called.add("s3:ListBucket")
    on_failure = (
        TEMPLATE["Resources"][logical_id]["Properties"]
        .get("EventInvokeConfig", {})
        .get("DestinationConfig", {})
        .get("OnFailure", {})
    )
    if on_failure.get("Type") == "SQS":
        called.add("sqs:SendMessage")  # Lambda sends the failed event with the role
    return called


def granted_actions(logical_id: str) -> set[str]:
    role: dict[str, Any] = CFN["Resources"][f"{logical_id}Role"]["Properties"]
    return {
        action
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
        for action in actions_of(statement)
    }


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_a_function_is_granted_exactly_the_actions_its_code_calls(logical_id: str) -> None:
    # Given what the function's code calls, and what its role grants
    called = expected_actions(logical_id, functions()[logical_id])
    granted = granted_actions(logical_id)
    # Then neither has an action the other lacks
    assert sorted(called - granted) == [], "called but not granted"
    assert sorted(granted - called) == [], "granted but never called"


def test_the_call_reader_sees_an_adapters_calls() -> None:
    # Given the adapter the webhook functions use (it only updates one item)
    source = module_file("kontext_pipeline.webhook_rendezvous").read_text(encoding="utf-8")
    # Then the reader finds its DynamoDB and Step Functions calls, and nothing else
    assert actions_called(source) == {
        "dynamodb:UpdateItem",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
    }
