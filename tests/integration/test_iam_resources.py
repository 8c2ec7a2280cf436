"""IAM in the local run checks the resource a grant names, not only its action, for the
services moto checks against "*" (local/moto_resources.py): a role granted one table,
topic, secret or bus is refused another, as AWS refuses it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from kontext_tools.local.account import REGION
from kontext_tools.local.iam_enforcement import function_credentials
from kontext_tools.local.moto_server import start_moto_server

# How DynamoDB, Secrets Manager and EventBridge name a refusal, and how SNS does.
DENIED = "AccessDeniedException"
SNS_DENIED = "AuthorizationError"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


class EmulatedAws:
    """An enforcing moto server, clients as the runner (administrator), and sessions of
    roles made there."""

    def __init__(self, endpoint: str, runner: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.runner = boto3.Session(
            aws_access_key_id=runner["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=runner["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )

    def admin(self, service: str) -> Any:
        return self.runner.client(service, endpoint_url=self.endpoint)

    def role_allowed(self, actions: list[str], resource: str) -> boto3.Session:
        """A session of a new role allowed `actions` on `resource` only."""
        iam = self.admin("iam")
        name = f"role-{abs(hash((tuple(actions), resource)))}"
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
        policy = {"Effect": "Allow", "Action": actions, "Resource": resource}
        iam.put_role_policy(
            RoleName=name,
            PolicyName="grant",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
        )
        credentials = function_credentials(arn["Role"]["Arn"], name)
        return boto3.Session(
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=credentials["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )


@pytest.fixture
def aws() -> Iterator[EmulatedAws]:
    with ExitStack() as stack:
        yield EmulatedAws(*start_moto_server(stack, None))


def answer(call: Callable[[], Any]) -> str:
    """The call's error code, or "allowed"."""
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "allowed"


def test_a_table_grant_holds_for_that_table_only(aws: EmulatedAws) -> None:
    # Given two tables, and a role allowed item reads and writes on the first
    dynamodb = aws.admin("dynamodb")
    arns = {}
    for table in ("granted", "other"):
        arns[table] = dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )["TableDescription"]["TableArn"]
    actions = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    role = aws.role_allowed(actions, arns["granted"]).client("dynamodb", endpoint_url=aws.endpoint)
    key = {"pk": {"S": "x"}}

    def transaction(table: str) -> Callable[[], Any]:
        update = {"TableName": table, "Key": key, "UpdateExpression": "SET n = :n"}
        values = {":n": {"N": "1"}}
        return lambda: role.transact_write_items(
            TransactItems=[{"Update": {**update, "ExpressionAttributeValues": values}}]
        )

    # When it reads and updates each table, alone and in a transaction
    # Then the first allows it and the other refuses it, as DynamoDB answers
    assert answer(lambda: role.get_item(TableName="granted", Key=key)) == "allowed"
    assert answer(lambda: role.get_item(TableName="other", Key=key)) == DENIED
    assert answer(transaction("granted")) == "allowed"
    assert answer(transaction("other")) == DENIED
    # And an action the role lacks is refused on its own table
    assert answer(lambda: role.delete_item(TableName="granted", Key=key)) == DENIED


def test_topic_secret_and_bus_grants_hold_for_those_only(aws: EmulatedAws) -> None:
    # Given two of each, and roles allowed on the first only
    sns, secrets, events = aws.admin("sns"), aws.admin("secretsmanager"), aws.admin("events")
    topics = [sns.create_topic(Name=name)["TopicArn"] for name in ("granted", "other")]
    secret_arns = [
        secrets.create_secret(Name=name, SecretString="s")["ARN"] for name in ("granted", "other")
    ]
    buses = [events.create_event_bus(Name=name)["EventBusArn"] for name in ("granted", "other")]
    publisher = aws.role_allowed(["sns:Publish"], topics[0]).client(
        "sns", endpoint_url=aws.endpoint
    )
    reader = aws.role_allowed(["secretsmanager:GetSecretValue"], secret_arns[0]).client(
        "secretsmanager", endpoint_url=aws.endpoint
    )
    putter = aws.role_allowed(["events:PutEvents"], buses[0]).client(
        "events", endpoint_url=aws.endpoint
    )

    def put_event(bus: str) -> Callable[[], Any]:
        entry = {"Source": "test", "DetailType": "t", "Detail": "{}", "EventBusName": bus}
        return lambda: putter.put_events(Entries=[entry])

    # When each calls on both
    # Then the first allows it and the other refuses it, as each service answers (a
    # secret named by name or by ARN)
    assert answer(lambda: publisher.publish(TopicArn=topics[0], Message="m")) == "allowed"
    assert answer(lambda: publisher.publish(TopicArn=topics[1], Message="m")) == SNS_DENIED
    assert answer(lambda: reader.get_secret_value(SecretId="granted")) == "allowed"
    assert answer(lambda: reader.get_secret_value(SecretId=secret_arns[0])) == "allowed"
    assert answer(lambda: reader.get_secret_value(SecretId="other")) == DENIED
    assert answer(put_event("granted")) == "allowed"
    assert answer(put_event("other")) == DENIED
    assert answer(put_event("default")) == DENIED
