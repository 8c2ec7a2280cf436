"""Each job's notification as the pipeline itself published it, kept in the jobs table
(`outcome#<job key>`) so that a callback's body comes from here and never from the event
that asked for it.

The bus's policy already lets only the publishing functions put job events; this record is
the second lock: an event that names a job which never ended, or claims another ending
than the one recorded, gets no signed callback.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.jobs.keys import expires_at, item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from kontext_pipeline.core.models import SourceObject
    from kontext_pipeline.core.notification import Notification


def outcome_item_key(source: SourceObject) -> dict[str, AttributeValueTypeDef]:
    """One record per upload version: the same key the job's submit claimed (ledger.py)."""
    return item_key(f"outcome#{source.execution_name}")


def record_outcome(dynamodb: DynamoDBClient, table_name: str, notification: Notification) -> None:
    """Written before the notification goes out, so its callback always finds it."""
    try:
        dynamodb.put_item(
            TableName=table_name,
            Item={
                **outcome_item_key(notification.source),
                "notification": {"S": notification.model_dump_json()},
                "expires_at": expires_at(),
            },
        )
    except (ClientError, BotoCoreError) as exc:
        raise table_unavailable(exc) from exc


def recorded_outcome(
    dynamodb: DynamoDBClient, table_name: str, source: SourceObject
) -> dict[str, Any] | None:
    """The notification the upload's job ended with, as the JSON that went out (so an event
    can be compared with it field for field), or None if the job has not ended."""
    try:
        item = dynamodb.get_item(
            TableName=table_name, Key=outcome_item_key(source), ConsistentRead=True
        ).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise table_unavailable(exc) from exc
    if item is None:
        return None
    published: dict[str, Any] = json.loads(item["notification"]["S"])
    return published
