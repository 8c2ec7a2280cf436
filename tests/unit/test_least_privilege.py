"""Each function's role grants the AWS actions its code calls, and no others.

The calls are read from the code, not listed by hand: a function's handler, the modules it
imports (module-level imports, followed through the layer), and the modules the Runtime
members it uses import on first use; in each, every call on an AWS client
(`s3.head_object(...)`, `self.dynamodb.update_item(...)`) becomes the IAM action it
needs. The grants are read from SAM's translation of the template, where policy
templates are expanded into the statements IAM sees. A new call without its grant, or a
grant no call uses, fails here; the local run's IAM enforcement proves the same calls at
run time.
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.unit.test_template import CFN, TEMPLATE

LAYER = ROOT / "layers" / "common"
RUNTIME = LAYER / "kontext_pipeline" / "runtime.py"
# The services whose grants this test holds to the code (logs and X-Ray come with the
# managed execution policies, SQS with the on-failure destinations, below).
SERVICES = {"s3": "s3", "dynamodb": "dynamodb", "sns": "sns", "events": "events"}
SERVICES |= {"stepfunctions": "states", "secretsmanager": "secretsmanager"}
# Client methods whose IAM action is not the operation's own name.
ACTIONS_OF_METHOD = {
    ("s3", "head_object"): ["s3:GetObject"],
    ("s3", "generate_presigned_url"): ["s3:GetObject"],
    # The form's upload is made with the signer's role (intake/edits.py).
    ("s3", "generate_presigned_post"): ["s3:PutObject"],
    # The transfer manager's multipart upload: PutObject covers create/upload/complete.
    ("s3", "upload_fileobj"): ["s3:PutObject", "s3:AbortMultipartUpload"],
    # Our transactions only update (budget.py).
    ("dynamodb", "transact_write_items"): ["dynamodb:UpdateItem"],
}
# What a library the layer hands a client to calls with it.
ACTIONS_OF_LIBRARY = {
    # Powertools Idempotency's DynamoDB persistence layer.
    "DynamoDBPersistenceLayer": [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ],
    # Powertools Parameters' Secrets Manager provider.
    "SecretsProvider": ["secretsmanager:GetSecretValue"],
}


def module_path(module: str) -> Path | None:
    base = LAYER / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


Use = tuple[str, str]  # (module, top-level name): a function, a class, a constant
MODULE = ""  # the name of a Use that is a whole module, imported as such


def top_level(module: str) -> dict[str, ast.AST]:
    path = module_path(module)
    assert path is not None, module
    found: dict[str, ast.AST] = {}
    for node in tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    found[target.id] = node
    return found


def imports_of(nodes: list[ast.AST]) -> dict[str, Use]:
    """The layer's names these nodes import, by local name, leaving out type-checking ones."""
    found: dict[str, Use] = {}
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kontext_pipeline"):
            for alias in node.names:
                module = str(node.module)
                if module_path(f"{module}.{alias.name}") is not None:
                    # A module imported (`from kontext_pipeline.steps import check_status`):
                    # its names are followed where they are used (`check_status.run`).
                    found[alias.asname or alias.name] = (f"{module}.{alias.name}", MODULE)
                    continue
                found[alias.asname or alias.name] = (module, alias.name)
        found |= imports_of(list(ast.iter_child_nodes(node)))
    return found


def uses_in(node: ast.AST, module: str) -> set[Use]:
    """The layer's names a piece of code refers to: its module's own, or imported ones."""
    own = top_level(module)
    imported = imports_of(list(tree(module_path(module)).body)) | imports_of([node])  # type: ignore[arg-type]
    uses: set[Use] = set()
    for name in ast.walk(node):
        if isinstance(name, ast.Attribute) and isinstance(name.value, ast.Name):
            module_imported = imported.get(name.value.id)
            if module_imported is not None and module_imported[1] == MODULE:
                uses.add((module_imported[0], name.attr))
        if isinstance(name, ast.Name) and name.id in imported:
            if imported[name.id][1] != MODULE:
                uses.add(imported[name.id])
        elif isinstance(name, ast.Name) and name.id in own:
            uses.add((module, name.id))
    return uses


def registered_on(module: str, name: str) -> set[Use]:
    """The functions a module registers on its object `name` with a decorator (a resolver's
    routes, `@app.post(...)`): whatever reaches the object may run them."""
    return {
        (module, node.name)
        for node in tree(module_path(module)).body  # type: ignore[arg-type]
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(decorator).startswith(f"{name}.") for decorator in node.decorator_list)
    }


def runtime_members() -> dict[str, ast.AST]:
    (runtime,) = [
        node
        for node in tree(RUNTIME).body
        if isinstance(node, ast.ClassDef) and node.name == "Runtime"
    ]
    return {node.name: node for node in runtime.body if isinstance(node, ast.FunctionDef)}


def uses_of_runtime_member(name: str, seen: set[str]) -> set[Use]:
    """What a Runtime member builds on first use, with the members it reads in turn."""
    member = runtime_members().get(name)
    if member is None or name in seen:
        return set()
    seen.add(name)
    uses = uses_in(member, "kontext_pipeline.runtime")
    for node in ast.walk(member):
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self":
            uses |= uses_of_runtime_member(node.attr, seen)
    return uses


def code_of_function(function_dir: str) -> set[Use]:
    """Every piece of the layer the function's handler may run, followed name by name."""
    handler = tree(ROOT / "functions" / function_dir / "app.py")
    imported = imports_of(list(handler.body))
    waiting = {use for use in imported.values() if use[1] != MODULE}
    for node in ast.walk(handler):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module, name = imported.get(node.value.id, ("", "not a module"))
            if name == MODULE:
                waiting.add((module, node.attr))
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "runtime":
            waiting |= uses_of_runtime_member(node.attr, set())
    reached: set[Use] = set()
    while waiting:
        use = waiting.pop()
        module, name = use
        if use in reached or module == "kontext_pipeline.runtime":
            continue
        reached.add(use)
        node = top_level(module).get(name)
        if node is not None:
            waiting |= uses_in(node, module) | registered_on(module, name)
        else:  # a name the module imports from another (a package's __init__ re-exporting)
            reexported = imports_of(list(tree(module_path(module)).body)).get(name)  # type: ignore[arg-type]
            waiting |= {reexported} if reexported else set()
    return reached


def actions_called_in(node: ast.AST) -> set[str]:
    actions: set[str] = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Name) and call.id in ACTIONS_OF_LIBRARY:
            actions.update(ACTIONS_OF_LIBRARY[call.id])
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        client = ast.unparse(call.func.value).rsplit(".", 1)[-1]
        if client in SERVICES:
            method = call.func.attr
            pascal = "".join(part.title() for part in method.split("_"))
            default = [f"{SERVICES[client]}:{pascal}"]
            actions.update(ACTIONS_OF_METHOD.get((client, method), default))
    return actions


def actions_called_by(function_dir: str) -> set[str]:
    code = code_of_function(function_dir)
    actions: set[str] = set()
    for module, name in code:
        node = top_level(module).get(name)
        if node is not None:
            actions |= actions_called_in(node)
    names = {name for _, name in code}
    # A read pinned to the upload's version needs GetObjectVersion too; a read that tells a
    # missing object from a forbidden one needs ListBucket (S3 answers 403 without it).
    if "s3:GetObject" in actions and "object_request" in names:
        actions.add("s3:GetObjectVersion")
    if "s3:GetObject" in actions and "is_missing_object" in names:
        actions.add("s3:ListBucket")
    return actions


def functions() -> dict[str, str]:
    """Each function's logical id by its code folder."""
    return {
        resource["Properties"]["CodeUri"].removeprefix("functions/").rstrip("/"): logical_id
        for logical_id, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def actions_granted_to(logical_id: str) -> set[str]:
    """The actions the function's role grants, in the services this test holds."""
    role = CFN["Resources"][f"{logical_id}Role"]["Properties"]
    granted: set[str] = set()
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            action = statement["Action"]
            granted.update([action] if isinstance(action, str) else action)
    return {action for action in granted if action.split(":")[0] in SERVICES.values()}


def unmatched(patterns: set[str], actions: set[str]) -> set[str]:
    return {p for p in patterns if not any(fnmatchcase(a, p) for a in actions)}


@pytest.mark.parametrize("function_dir", sorted(functions()))
def test_a_role_grants_what_its_function_calls_and_nothing_else(function_dir: str) -> None:
    # Given what the function's code calls on AWS, and what its role grants
    called = actions_called_by(function_dir)
    granted = actions_granted_to(functions()[function_dir])
    # When the two are compared
    missing = {action for action in called if not any(fnmatchcase(action, g) for g in granted)}
    unused = unmatched(granted, called)
    # Then every call is granted, and every grant is called
    assert (missing, unused) == (set(), set())


def test_the_reading_of_the_code_finds_the_calls_it_must() -> None:
    # Given functions whose calls are known
    # When their code is read / Then the calls are found (else the test above proves little)
    assert {"s3:GetObject", "s3:PutObject", "sns:Publish"} <= actions_called_by("collect_outputs")
    assert "states:StartExecution" in actions_called_by("start_edit")
    assert "dynamodb:UpdateItem" in actions_called_by("receive_webhook")
    assert "secretsmanager:GetSecretValue" in actions_called_by("check_status")


def test_an_unused_grant_and_an_ungranted_call_are_both_found() -> None:
    # Given a grant no call uses, and a call with no grant
    granted = {"s3:GetObject", "dynamodb:*"}
    called = {"s3:GetObject", "sns:Publish"}
    # Then each is named
    assert unmatched(granted, called) == {"dynamodb:*"}
    assert unmatched(called, granted) == {"sns:Publish"}


def state_machine_invoke_grants() -> list[Any]:
    resources = []
    for logical_id, resource in CFN["Resources"].items():
        if logical_id.endswith("StateMachineRole"):
            for policy in resource["Properties"]["Policies"]:
                for statement in policy["PolicyDocument"]["Statement"]:
                    if "lambda:InvokeFunction" in str(statement["Action"]):
                        resources.append(statement["Resource"])
    return resources


def test_the_state_machines_may_invoke_their_functions_and_no_namesakes() -> None:
    # Given the state machines' invoke grants (there must be some)
    grants = state_machine_invoke_grants()
    assert grants
    # Then each names a function's exact ARN, never `function:<name>*`, which also matches
    # any function whose name starts the same
    assert not [g for g in grants if re.search(r"function:[^:\"]*\*", str(g))]


@pytest.mark.parametrize("function_dir", sorted(functions()))
def test_a_function_sends_to_sqs_only_through_its_failure_destination(function_dir: str) -> None:
    # Given the function's role as SAM translates it
    role = CFN["Resources"][f"{functions()[function_dir]}Role"]["Properties"]
    # When its SQS grants are read
    sqs_policies = [
        policy["PolicyName"]
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if "sqs:" in str(statement["Action"])
    ]
    # Then the only one is the one SAM adds for the on-failure destination (a second,
    # hand-written SendMessage grant repeats it)
    assert all(name.endswith("EventInvokeConfigOnFailureSQSPolicy") for name in sqs_policies)
    assert len(sqs_policies) <= 1
