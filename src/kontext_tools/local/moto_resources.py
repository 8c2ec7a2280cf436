"""The resources IAM checks a request against, for the services moto checks against "*".

moto knows the resource of S3, SQS, IAM and STS requests only; for every other service it
checks the action against the resource "*", so an ARN-scoped grant would never match and
a grant on another table, topic or secret would pass. Here the ARN is read from the
request the way the Service Authorization Reference names it for the calls the pipeline
makes: the table of a DynamoDB item call, the topic of an SNS publish, the state machine
or execution of a Step Functions call, the secret of a Secrets Manager read, and the bus
of each EventBridge entry. A request not listed here is checked for its action only
(docs/decisions.md, "IAM in the local run").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# How a resource a request names without an ARN becomes its ARN, by service
# ({prefix} is arn:<partition>:<service>:<region>:<account>).
ARN_OF_NAME = {
    "dynamodb": "{prefix}:table/{name}",
    "events": "{prefix}:event-bus/{name}",
    "secretsmanager": "{prefix}:secret:{name}",
}


def resources_of(response: Any) -> list[str] | None:
    """The ARNs IAM checks this request against, or None where the local run does not
    know them (then only the action is checked)."""
    finder = _FINDERS.get(response.service_name)
    return finder(response) if finder is not None else None


def table_arn(response: Any, table: str) -> str:
    """A DynamoDB table's ARN from the name (or ARN) a request gives."""
    return _arn(response, "dynamodb", table)


def _arn(response: Any, service: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    from moto.utilities.utils import get_partition  # noqa: PLC0415 - local run only

    prefix = f"arn:{get_partition(response.region)}:{service}:{response.region}"
    return ARN_OF_NAME[service].format(prefix=f"{prefix}:{response.current_account}", name=name)


def _dynamodb(response: Any) -> list[str] | None:
    table = response._get_param("TableName")
    return [table_arn(response, table)] if table else None


def _sns(response: Any) -> list[str] | None:
    topic = response._get_param("TopicArn") or response._get_param("TargetArn")
    return [topic] if topic else None


def _stepfunctions(response: Any) -> list[str] | None:
    # A task token names no resource the request carries (SendTaskSuccess/Failure).
    arn = response._get_param("stateMachineArn") or response._get_param("executionArn")
    return [arn] if arn else None


def _secretsmanager(response: Any) -> list[str] | None:
    from moto.secretsmanager.exceptions import SecretNotFoundException  # noqa: PLC0415
    from moto.secretsmanager.models import secretsmanager_backends  # noqa: PLC0415

    secret_id = response._get_param("SecretId")
    if not secret_id:
        return None
    backend = secretsmanager_backends[response.current_account][response.region]
    try:
        return [backend.describe_secret(secret_id).arn]
    except SecretNotFoundException:  # IAM still checks the name asked for
        return [_arn(response, "secretsmanager", secret_id)]


def _events(response: Any) -> list[str] | None:
    if response._get_action() != "PutEvents":
        return None
    entries = json.loads(response.body or "{}").get("Entries", [])
    buses = {entry.get("EventBusName") or "default" for entry in entries}
    return sorted(_arn(response, "events", bus) for bus in buses) or None


_FINDERS: dict[str, Callable[[Any], list[str] | None]] = {
    "dynamodb": _dynamodb,
    "sns": _sns,
    "stepfunctions": _stepfunctions,
    "secretsmanager": _secretsmanager,
    "events": _events,
}
