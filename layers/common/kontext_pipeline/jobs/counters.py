"""A count that may not pass its cap, in one item of the jobs table: images a UTC day for
the stack (budget.py) and for an intake key (intake/key_caps.py). One conditional ADD, so
concurrent callers can never together pass the cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import aws_error_code
from kontext_pipeline.jobs.keys import expires_at, item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient


class CapReachedError(Exception):
    """The count would pass the cap; `counted` is what it held (None if unknown)."""

    def __init__(self, counted: int | None) -> None:
        super().__init__(f"cap reached at {counted}")
        self.counted = counted


@dataclass(frozen=True)
class CappedCount:
    """The item (`pk`) that holds the count, its cap, and how long the item is kept."""

    pk: str
    cap: int
    ttl_seconds: int


def count_within_cap(
    dynamodb: DynamoDBClient, table_name: str, counter: CappedCount, add: int
) -> int:
    """Adds `add` to the counter's `images` when the total stays within its cap: the new
    total. CapReachedError otherwise; the table's failures as StorageUnavailableError."""
    try:
        response = dynamodb.update_item(
            TableName=table_name,
            Key=item_key(counter.pk),
            UpdateExpression="ADD images :n SET expires_at = if_not_exists(expires_at, :ttl)",
            ConditionExpression="attribute_not_exists(images) OR images <= :room",
            ExpressionAttributeValues={
                ":n": {"N": str(add)},
                ":room": {"N": str(counter.cap - add)},
                ":ttl": expires_at(counter.ttl_seconds),
            },
            ReturnValues="UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if aws_error_code(exc) != "ConditionalCheckFailedException":
            raise table_unavailable(exc) from exc
        raise CapReachedError(images_in(exc.response.get("Item"))) from exc
    except BotoCoreError as exc:
        raise table_unavailable(exc) from exc
    return int(response["Attributes"]["images"]["N"])


def images_in(item: Any) -> int | None:
    if isinstance(item, dict) and "images" in item:
        return int(item["images"]["N"])
    return None
