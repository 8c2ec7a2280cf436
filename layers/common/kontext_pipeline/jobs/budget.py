"""The spending cap: images per UTC day, and requests at the model at once.

Both are counters in the jobs table, changed with conditional atomic updates before the
paid submit, so concurrent submits can never together pass a cap:

    budget#images#<YYYY-MM-DD>   images    ADD n  if images + n <= MaxImagesPerDay
    budget#in-flight             requests  ADD 1  if requests < MaxConcurrentRequests

A day's images are spent before the submit; they are given back only when the submit is
known not to have reached the model (the same rule as the submit claim: store.py holds
the order), never after. A request slot is held from submit until the job ends; the job's
own item (`job#<key>`) records that it holds one, and the release clears that mark and
decrements the counter in one transaction, so a retried release (or a job that never held
a slot) cannot free a slot twice. A cap of 0 means no cap and touches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import (
    BudgetExceededError,
    ConcurrencyCapReachedError,
    Reason,
    StorageUnavailableError,
    aws_error_code,
)
from kontext_pipeline.core.models import utc_now
from kontext_pipeline.core.observability import MetricUnit, metrics
from kontext_pipeline.jobs.counters import (
    CappedCount,
    CapReachedError,
    count_within_cap,
    images_in,
)
from kontext_pipeline.jobs.keys import expires_at, item_key, job_item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

IN_FLIGHT_KEY = "budget#in-flight"
SPENT_TODAY_METRIC = "ImagesSpentToday"
# A day's counter outlives its day by a week, for `jobs` and for anyone auditing the cap.
DAY_RECORD_TTL_SECONDS = 8 * 24 * 3600


def day_key(now: datetime) -> str:
    return f"budget#images#{now.date().isoformat()}"


@dataclass(frozen=True)
class Budget:
    dynamodb: DynamoDBClient
    table_name: str
    max_images_per_day: int = 0
    max_concurrent_requests: int = 0

    def spend_images(self, count: int, *, now: datetime | None = None) -> int | None:
        """Count `count` images against today's cap; returns the day's new total.

        Raises BudgetExceededError (with the cap and the day's count) when they would pass it.
        """
        if self.max_images_per_day <= 0:
            return None
        now = now or utc_now()
        try:
            counter = CappedCount(day_key(now), self.max_images_per_day, DAY_RECORD_TTL_SECONDS)
            spent_today = count_within_cap(self.dynamodb, self.table_name, counter, count)
        except CapReachedError as exc:
            spent = exc.counted or self.images_spent(now=now)
            raise BudgetExceededError(
                f"MaxImagesPerDay is {self.max_images_per_day}; {spent} already submitted on "
                f"{now.date().isoformat()} (UTC), this job asks for {count}",
                reason=Reason.BUDGET_EXCEEDED,
            ) from exc
        # The daily-cap alarm watches this total: it restarts with the UTC day the cap counts,
        # which a sum of ImagesRequested over a rolling 24 h window does not.
        metrics.add_metric(name=SPENT_TODAY_METRIC, unit=MetricUnit.Count, value=spent_today)
        return spent_today

    def refund_images(self, count: int, *, now: datetime | None = None) -> None:
        """Give back images whose submit never reached the model."""
        if self.max_images_per_day <= 0:
            return
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=item_key(day_key(now or utc_now())),
                UpdateExpression="ADD images :n",
                ConditionExpression="attribute_exists(images)",
                ExpressionAttributeValues={":n": {"N": str(-count)}},
            )
        except (ClientError, BotoCoreError) as exc:
            # Erring on the side of the cap: a lost refund makes the day stricter, not dearer.
            raise StorageUnavailableError(f"images not given back: {exc}") from exc

    def images_spent(self, *, now: datetime | None = None) -> int:
        try:
            item = self.dynamodb.get_item(
                TableName=self.table_name,
                Key=item_key(day_key(now or utc_now())),
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise table_unavailable(exc) from exc
        return images_in(item) or 0

    def take_slot(self, job_key: str) -> bool:
        """Hold one of MaxConcurrentRequests for this job; False when there is no cap.

        Raises ConcurrencyCapReachedError when every slot is held (the state machine waits
        and retries).
        """
        if self.max_concurrent_requests <= 0:
            return False
        counter = _update(
            self.table_name,
            item_key(IN_FLIGHT_KEY),
            "ADD requests :one",
            "attribute_not_exists(requests) OR requests < :cap",
            {":one": {"N": "1"}, ":cap": {"N": str(self.max_concurrent_requests)}},
        )
        mark = _update(
            self.table_name,
            job_item_key(job_key),
            "SET holds_slot = :yes, expires_at = :ttl",
            "attribute_not_exists(holds_slot)",
            {":yes": {"BOOL": True}, ":ttl": expires_at()},
        )
        refused = self._transact(counter, mark)
        if refused[1:2] == ["ConditionalCheckFailed"]:
            return True  # this job already holds a slot (a retried submit)
        if refused[:1] == ["ConditionalCheckFailed"]:
            raise ConcurrencyCapReachedError(
                f"MaxConcurrentRequests is {self.max_concurrent_requests} and every "
                "one is in use; the job waits",
                reason=Reason.CONCURRENCY_CAP_REACHED,
            )
        if refused:
            raise StorageUnavailableError("jobs table unavailable: TransactionCanceledException")
        return True

    def release_slot(self, job_key: str) -> bool:
        """Free this job's slot if it holds one; True when one was freed."""
        if self.max_concurrent_requests <= 0:
            return False
        mark = _update(
            self.table_name,
            job_item_key(job_key),
            "REMOVE holds_slot",
            "holds_slot = :yes",
            {":yes": {"BOOL": True}},
        )
        counter = _update(
            self.table_name,
            item_key(IN_FLIGHT_KEY),
            "ADD requests :minus",
            "requests > :zero",
            {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
        )
        # Refused: no slot held by this job (never taken, or already freed).
        return not self._transact(mark, counter)

    def _transact(self, *updates: TransactWriteItemTypeDef) -> list[str]:
        """Both updates or neither; the cancellation reasons' codes when refused, else []."""
        try:
            self.dynamodb.transact_write_items(TransactItems=list(updates))
        except ClientError as exc:
            if aws_error_code(exc) != "TransactionCanceledException":
                raise table_unavailable(exc) from exc
            reasons = exc.response.get("CancellationReasons", [])
            return [str(item.get("Code")) for item in reasons] or ["TransactionCanceled"]
        except BotoCoreError as exc:
            raise table_unavailable(exc) from exc
        return []


def _update(
    table_name: str,
    key: dict[str, AttributeValueTypeDef],
    expression: str,
    condition: str,
    values: Mapping[str, AttributeValueTypeDef],
) -> TransactWriteItemTypeDef:
    """One conditional update of a transaction."""
    return {
        "Update": {
            "TableName": table_name,
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": dict(values),
        }
    }
