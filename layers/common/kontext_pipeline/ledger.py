"""The jobs table: what was submitted for a job, written before and after the paid call.

Powertools Idempotency would re-run a submit whose record stayed IN_PROGRESS past the
function's timeout, which is exactly the case that pays twice (the model took the request,
the function died before it could say so). So the submit keeps its own two-step record:

    claim   conditional put {job, state=SUBMITTING}      before the POST
    record  update {state=SUBMITTED, request_id, urls}    right after the POST answers

A retried submit then finds one of three things: nothing (submit), SUBMITTED (reuse the
request, pay nothing), or SUBMITTING (the answer was lost: the request may exist, so the
job fails as `model_submit_uncertain` instead of paying again).

The same table holds the webhook task tokens (see webhook_rendezvous.py); every item expires by TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kontext_pipeline.errors import (
    ModelSubmitUncertainError,
    StorageUnavailableError,
    aws_error_code,
)
from kontext_pipeline.models import QueueSubmission

# Long enough for the model's webhook retries (2 hours) and any deadline a user sets.
RECORD_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class JobLedger:
    dynamodb: Any
    table_name: str

    def claim_submit(self, job_key: str) -> QueueSubmission | None:
        """Claim the right to submit; returns the earlier submission if there was one."""
        now = int(time.time())
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"job#{job_key}"},
                    "state": {"S": "SUBMITTING"},
                    "claimed_at": {"N": str(now)},
                    "expires_at": {"N": str(now + RECORD_TTL_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise StorageUnavailableError(f"jobs table unavailable: {_code(exc)}") from exc
            return self._earlier_submission(job_key)
        return None

    def release_claim(self, job_key: str) -> None:
        """The submit was definitely not accepted (refused, or never connected): allow a retry."""
        try:
            self.dynamodb.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"job#{job_key}"}},
                ConditionExpression="#state = :submitting",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":submitting": {"S": "SUBMITTING"}},
            )
        except ClientError as exc:
            raise StorageUnavailableError(f"jobs table unavailable: {_code(exc)}") from exc

    def record_submit(self, job_key: str, submission: QueueSubmission) -> None:
        try:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"job#{job_key}"}},
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
        except ClientError as exc:
            # The request exists at the model; without the record a retry would not know it.
            # The caller returns the submission anyway: the execution history keeps it.
            raise StorageUnavailableError(
                f"request {submission.request_id} submitted but not recorded: {_code(exc)}"
            ) from exc

    def _earlier_submission(self, job_key: str) -> QueueSubmission:
        item = self.dynamodb.get_item(
            TableName=self.table_name, Key={"pk": {"S": f"job#{job_key}"}}, ConsistentRead=True
        ).get("Item", {})
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


def _code(exc: ClientError) -> str:
    return aws_error_code(exc)
