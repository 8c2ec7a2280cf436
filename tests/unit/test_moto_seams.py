"""The private moto functions the local run replaces (docs/moto.md), pinned.

Each replacement was written against one signature in one range of moto versions; an
upgrade that moves a seam must fail here, loudly and by name, not as a strange local run.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import version

import pytest

# (module, attribute path, its parameters, the section of docs/moto.md)
SEAMS = [
    ("moto.s3.responses", "metadata_from_headers", ["headers"], "S3: user metadata"),
    (
        "moto.s3.responses",
        "S3Response._bucket_response_post",
        ["self", "request", "bucket_name"],
        "S3: POST forms",
    ),
    (
        "moto.s3.notifications",
        "_get_s3_event",
        ["event_name", "bucket", "key", "notification_id"],
        "S3: event records",
    ),
    (
        "moto.stepfunctions.responses",
        "StepFunctionResponse.send_task_failure",
        ["self"],
        "Step Functions",
    ),
    (
        "moto.stepfunctions.parser.models",
        "StepFunctionsParserBackend.send_task_failure",
        ["self", "task_token", "error", "cause"],
        "Step Functions",
    ),
    (
        "moto.dynamodb.models",
        "DynamoDBBackend.get_item",
        ["self", "table_name", "keys", "projection_expressions"],
        "DynamoDB",
    ),
    (
        "moto.dynamodb.models",
        "DynamoDBBackend.put_item",
        [
            "self",
            "table_name",
            "item_attrs",
            "expected",
            "condition_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "overwrite",
            "return_values_on_condition_check_failure",
        ],
        "DynamoDB",
    ),
    (
        "moto.dynamodb.models",
        "DynamoDBBackend.update_item",
        [
            "self",
            "table_name",
            "key",
            "update_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "attribute_updates",
            "expected",
            "condition_expression",
            "return_values_on_condition_check_failure",
        ],
        "DynamoDB",
    ),
    (
        "moto.dynamodb.models",
        "DynamoDBBackend.delete_item",
        [
            "self",
            "table_name",
            "key",
            "expression_attribute_names",
            "expression_attribute_values",
            "condition_expression",
            "return_values_on_condition_check_failure",
        ],
        "DynamoDB",
    ),
    (
        "moto.dynamodb.models",
        "DynamoDBBackend.transact_write_items",
        ["self", "transact_items"],
        "DynamoDB",
    ),
    ("moto.awslambda.models", "LambdaFunction._invoke_lambda", ["self", "event"], "Lambda"),
    (
        "moto.awslambda.models",
        "LambdaFunction.invoke",
        ["self", "body", "request_headers", "response_headers"],
        "Lambda",
    ),
    (
        "moto.events.models",
        "Rule.send_to_targets",
        ["self", "original_event", "transform_input"],
        "EventBridge",
    ),
    (
        "moto.core.authorization",
        "ActionAuthenticatorMixin._authenticate_and_authorize_action",
        ["self", "iam_request_cls", "resource"],
        "IAM",
    ),
    (
        "moto.iam.access_control",
        "IAMPolicyStatement._check_element_matches",
        ["self", "statement_element", "value"],
        "IAM",
    ),
]


def parameters_of(module: str, path: str) -> list[str]:
    found: object = importlib.import_module(module)
    for name in path.split("."):
        found = getattr(found, name)
    return list(inspect.signature(found).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(("module", "path", "expected", "section"), SEAMS)
def test_each_seam_the_local_run_replaces_is_where_it_was(
    module: str, path: str, expected: list[str], section: str
) -> None:
    # Given a moto function the local run replaces / When its signature is read
    # Then it takes what the replacement was written for
    try:
        found = parameters_of(module, path)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"moto moved {module}.{path} ({exc}): see docs/moto.md, '{section}'")
    assert found == expected, f"{module}.{path} changed: see docs/moto.md, '{section}'"


def test_moto_is_the_version_range_the_seams_were_checked_on() -> None:
    # Given the installed moto / Then it is in the range pyproject.toml allows and
    # docs/moto.md names; widening it means checking every seam above again
    major, minor = (int(part) for part in version("moto").split(".")[:2])
    assert (major, minor) == (5, 2), "moto upgraded: check docs/moto.md's seams, then widen"
