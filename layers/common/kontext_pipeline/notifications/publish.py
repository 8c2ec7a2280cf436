"""SNS: exactly one notification per job, success or failure.

The body is the Notification JSON; the message attributes repeat the fields subscribers
filter on (status, reason, bucket, nsfw), since SNS filter policies read attributes.

The same message goes to EventBridge (source `kontext-pipeline`, detail-type
`Kontext Edit Succeeded` / `Kontext Edit Failed`) so other pipelines can chain on it
with rules instead of subscriptions.

A task retried after its publish went out (a timeout on the way back, say) would publish
again; Powertools Idempotency, on the jobs table, remembers each (job, status) it
published and answers a repeat with the first message id instead.

Before anything goes out, the notification is recorded in the jobs table
(jobs/published.py): a job's callback is built from that record, not from the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.exceptions import ClientError

from kontext_pipeline.core.errors import NotificationError, aws_error_code
from kontext_pipeline.core.notification import EVENT_SOURCE, Notification
from kontext_pipeline.jobs.keys import RECORD_TTL_SECONDS
from kontext_pipeline.jobs.published import record_outcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_sns.client import SNSClient
    from types_boto3_sns.type_defs import MessageAttributeValueTypeDef

DETAIL_TYPES = {"SUCCEEDED": "Kontext Edit Succeeded", "FAILED": "Kontext Edit Failed"}
# One job publishes at most once per status, whatever the retries.
IDEMPOTENCY_KEY = "[source.bucket, source.key, source.version_id, request_id, status]"


def notification_attributes(
    notification: Notification,
) -> dict[str, MessageAttributeValueTypeDef]:
    attributes = {
        "status": notification.status,
        "bucket": notification.source.bucket,
        "has_nsfw_concepts": "true" if any(notification.has_nsfw_concepts) else "false",
    }
    if notification.failure is not None:
        attributes["reason"] = notification.failure.reason
    return {
        name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
    }


def publish_notification(sns: SNSClient, topic_arn: str, notification: Notification) -> str:
    """Publish and return the SNS message id."""
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=notification.subject(),
            Message=notification.model_dump_json(),
            MessageAttributes=notification_attributes(notification),
        )
    except ClientError as exc:
        code = aws_error_code(exc)
        raise NotificationError(f"SNS publish to {topic_arn} failed: {code}") from exc
    message_id: str = response["MessageId"]
    return message_id


def put_notification_event(
    events: EventBridgeClient, event_bus_name: str, notification: Notification
) -> None:
    try:
        response = events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": DETAIL_TYPES[notification.status],
                    "Detail": notification.model_dump_json(),
                    "EventBusName": event_bus_name,
                    "Resources": [f"arn:aws:s3:::{notification.source.bucket}"],
                }
            ]
        )
    except ClientError as exc:
        code = aws_error_code(exc)
        raise NotificationError(f"EventBridge put to {event_bus_name} failed: {code}") from exc
    if response.get("FailedEntryCount"):
        raise NotificationError(f"EventBridge refused the event: {response['Entries']}")


@dataclass(frozen=True)
class Notifier:
    """Publishes a job's notification once (SNS + EventBridge), remembering it in the jobs table.

    Kept for the life of the function (Runtime.notifier): the idempotency config, store and
    wrapped publish are built once per cold start; each invocation only registers its
    context, so a record in progress expires with the invocation that wrote it.
    """

    sns: SNSClient
    topic_arn: str
    events: EventBridgeClient
    event_bus_name: str
    dynamodb: DynamoDBClient
    table_name: str

    def register_lambda_context(self, lambda_context: LambdaContext) -> None:
        self._idempotency_config.register_lambda_context(lambda_context)

    def publish_once(self, notification: Notification) -> str:
        message_id: str = self._publish(notification=notification)
        return message_id

    @cached_property
    def _idempotency_config(self) -> IdempotencyConfig:
        return IdempotencyConfig(
            event_key_jmespath=IDEMPOTENCY_KEY,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=RECORD_TTL_SECONDS,
        )

    @cached_property
    def _publish(self) -> Callable[..., str]:
        """The publish, wrapped in Powertools Idempotency."""
        persistence = DynamoDBPersistenceLayer(
            table_name=self.table_name,
            key_attr="pk",
            expiry_attr="expires_at",
            boto3_client=self.dynamodb,
        )

        @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools types it as Any
            data_keyword_argument="notification",
            persistence_store=persistence,
            config=self._idempotency_config,
            key_prefix="notification",
        )
        def publish(notification: Notification) -> str:
            record_outcome(self.dynamodb, self.table_name, notification)
            message_id = publish_notification(self.sns, self.topic_arn, notification)
            put_notification_event(self.events, self.event_bus_name, notification)
            return message_id

        published: Callable[..., str] = publish
        return published
