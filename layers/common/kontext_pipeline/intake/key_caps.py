"""A key's own daily image cap (`api-key create NAME --daily-images N`): the images its
edits ask for in a UTC day, counted in the jobs table (`api-key-usage#<key id>#<day>`)
when an edit is made, before its image is stored. The stack's own MaxImagesPerDay still
applies to every upload, whoever made it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import Reason, aws_error_code
from kontext_pipeline.intake.problems import IntakeRefusedError
from kontext_pipeline.jobs.keys import expires_at, item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

    from kontext_pipeline.intake.api_keys import ApiKey

USAGE_TTL_SECONDS = 2 * 24 * 3600


def count_daily_images(
    dynamodb: DynamoDBClient, table_name: str, api_key: ApiKey, images: int
) -> None:
    """Counts `images` against the key's cap for today; refused (429) past it. A key
    without a cap is not counted."""
    if api_key.daily_images is None:
        return
    day = time.strftime("%Y-%m-%d", time.gmtime())
    try:
        dynamodb.update_item(
            TableName=table_name,
            Key=item_key(f"api-key-usage#{api_key.key_id}#{day}"),
            UpdateExpression="ADD images :n SET expires_at = if_not_exists(expires_at, :ttl)",
            ConditionExpression="attribute_not_exists(images) OR images <= :left",
            ExpressionAttributeValues={
                ":n": {"N": str(images)},
                ":left": {"N": str(api_key.daily_images - images)},
                ":ttl": expires_at(USAGE_TTL_SECONDS),
            },
        )
    except ClientError as exc:
        if aws_error_code(exc) == "ConditionalCheckFailedException":
            raise IntakeRefusedError(
                f"the key {api_key.name!r} has asked for its {api_key.daily_images} images "
                "of today (UTC); it may ask again tomorrow",
                reason=Reason.KEY_DAILY_CAP_REACHED,
            ) from exc
        raise table_unavailable(exc) from exc
    except BotoCoreError as exc:
        raise table_unavailable(exc) from exc
