"""The jobs table around the paid submit: exactly one submit per upload, in one call.

Powertools Idempotency would re-run a submit whose record stayed IN_PROGRESS past the
function's timeout, which is exactly the case that pays twice (the model took the request,
the function died before it could say so). So the submit keeps its own two-step record:

    claim   conditional put {job, state=SUBMITTING}      before the POST
    record  update {state=SUBMITTED, request_id, urls}    right after the POST answers

A retried submit then finds one of three things: nothing (submit), SUBMITTED (reuse the
request, pay nothing), or SUBMITTING (the answer was lost: the request may exist, so the
job fails as `model_submit_uncertain` instead of paying again).

The order of the whole submit, with the budget's parts and what is given back when, is
`JobsStore.submit_once` (store.py).

The same table holds the webhook task tokens (see webhook_rendezvous.py); every item
expires by TTL (jobs/keys.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import (
    ModelSubmitUncertainError,
    StorageUnavailableError,
    aws_error_code,
)
from kontext_pipeline.core.models import QueueSubmission
from kontext_pipeline.jobs.keys import RECORD_TTL_SECONDS, job_item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient


@dataclass(frozen=True)
class JobLedger:
    dynamodb: DynamoDBClient
    table_name: str

    def claim_submit(self, job_key: str) -> QueueSubmission | None:
        """Claim the right to submit; returns the earlier submission if there was one."""
        now = int(time.time())
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    **job_item_key(job_key),
                    "state": {"S": "SUBMITTING"},
                    "claimed_at": {"N": str(now)},
                    "expires_at": {"N": str(now + RECORD_TTL_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise table_unavailable(exc) from exc
            return self._earlier_submission(job_key)
        except BotoCoreError as exc:
            raise table_unavailable(exc) from exc
        return None

    def release_claim(self, job_key: str) -> None:
        """The submit was definitely not accepted (refused, or never connected): allow a retry."""
        try:
            self.dynamodb.delete_item(
                TableName=self.table_name,
                Key=job_item_key(job_key),
                ConditionExpression="#state = :submitting",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":submitting": {"S": "SUBMITTING"}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise table_unavailable(exc) from exc

    def record_submit(self, job_key: str, submission: QueueSubmission) -> None:
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=job_item_key(job_key),
                UpdateExpression=(
                    "SET #state = :submitted, request_id = :id, status_url = :status, "
                    "response_url = :response, cancel_url = :cancel"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":submitted": {"S": "SUBMITTED"},
                    ":id": {"S": submission.request_id},
                    ":status": {"S": submission.status_url},
                    ":response": {"S": submission.response_url},
                    ":cancel": {"S": submission.cancel_url},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            # The request exists at the model; without the record a retry would not know it.
            # The caller returns the submission anyway: the execution history keeps it.
            raise StorageUnavailableError(
                f"request {submission.request_id} submitted but not recorded: "
                f"{table_unavailable(exc).message}"
            ) from exc

    def _earlier_submission(self, job_key: str) -> QueueSubmission:
        try:
            item = self.dynamodb.get_item(
                TableName=self.table_name, Key=job_item_key(job_key), ConsistentRead=True
            ).get("Item", {})
        except (ClientError, BotoCoreError) as exc:
            raise table_unavailable(exc) from exc
        if item.get("state", {}).get("S") == "SUBMITTED":
            return QueueSubmission(
                request_id=item["request_id"]["S"],
                status_url=item["status_url"]["S"],
                response_url=item["response_url"]["S"],
                cancel_url=item["cancel_url"]["S"],
            )
        raise ModelSubmitUncertainError(
            "an earlier attempt of this job started a submit and never recorded its answer; "
            "the model may have the request, so it is not submitted again"
        )
