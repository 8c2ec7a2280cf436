"""SNS: one notification per job, success or failure.

The body is the Notification JSON; the message attributes repeat the fields subscribers
filter on (status, reason, bucket, nsfw), since SNS filter policies read attributes.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from kontext_pipeline.errors import NotificationError
from kontext_pipeline.models import Notification


def notification_attributes(notification: Notification) -> dict[str, dict[str, str]]:
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


def publish_notification(sns: Any, topic_arn: str, notification: Notification) -> str:
    """Publish and return the SNS message id."""
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=notification.subject(),
            Message=notification.model_dump_json(),
            MessageAttributes=notification_attributes(notification),
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        raise NotificationError(f"SNS publish to {topic_arn} failed: {code}") from exc
    message_id: str = response["MessageId"]
    return message_id
