"""A key's own daily image cap (`api-key create NAME --daily-images N`): the images its
edits ask for in a UTC day, counted in the jobs table (`api-key-usage#<key id>#<day>`)
when an edit is made, before its image is stored. The stack's own MaxImagesPerDay still
applies to every upload, whoever made it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kontext_pipeline.core.errors import Reason
from kontext_pipeline.intake.problems import IntakeRefusedError
from kontext_pipeline.jobs.counters import CappedCount, CapReachedError, count_within_cap

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
    pk = f"api-key-usage#{api_key.key_id}#{day}"
    counter = CappedCount(pk, api_key.daily_images, USAGE_TTL_SECONDS)
    try:
        count_within_cap(dynamodb, table_name, counter, images)
    except CapReachedError as exc:
        raise IntakeRefusedError(
            f"the key {api_key.name!r} has asked for {exc.counted} of its "
            f"{api_key.daily_images} images of today (UTC); this edit asks for {images}",
            reason=Reason.KEY_DAILY_CAP_REACHED,
        ) from exc
