"""The trigger's dead-letter queue: the failed S3 events handed back to the trigger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kontext_tools.deployed.stacks import DeployedStackError
from kontext_tools.errors import ToolReason

if TYPE_CHECKING:
    from types_boto3_lambda.client import LambdaClient
    from types_boto3_s3.client import S3Client
    from types_boto3_sqs.client import SQSClient


@dataclass(frozen=True)
class RedriveOutcome:
    replayed: int
    unreadable: int
    function: str


def trigger_function_of(s3: S3Client, bucket: str) -> str:
    """The function the bucket's uploads trigger (from its notification configuration)."""
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    functions = [
        item["LambdaFunctionArn"] for item in configuration.get("LambdaFunctionConfigurations", [])
    ]
    if not functions:
        raise DeployedStackError(
            f"bucket {bucket} triggers no function; is the stack fully deployed?",
            reason=ToolReason.NO_TRIGGER,
        )
    return str(functions[0])


def redrive_dead_letters(
    sqs: SQSClient, lambda_client: LambdaClient, queue_url: str, function: str, *, limit: int = 1000
) -> RedriveOutcome:
    """Hand each failed S3 event back to the trigger (asynchronously, as S3 does).

    A message is deleted only once its event was handed over, so an interrupted redrive
    loses nothing; a replayed event whose job already exists is dropped by the trigger
    as a duplicate. Messages that are not Lambda failure records are left in the queue.
    """
    replayed = unreadable = 0
    while replayed + unreadable < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            event = _failed_event(message.get("Body", ""))
            if event is None:
                unreadable += 1
                continue
            lambda_client.invoke(
                FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode()
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            replayed += 1
    return RedriveOutcome(replayed, unreadable, function)


def _failed_event(body: str) -> dict[str, Any] | None:
    """The S3 event inside a Lambda on-failure destination record (or a bare event)."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    event = document.get("requestPayload", document)
    return event if isinstance(event, dict) and "Records" in event else None
