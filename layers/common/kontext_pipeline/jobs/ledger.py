"""The jobs table around the paid submit: exactly one submit per upload, in one call.

Powertools Idempotency would re-run a submit whose record stayed IN_PROGRESS past the
function's timeout, which is exactly the case that pays twice (the model took the request,
the function died before it could say so). So the submit keeps its own two-step record:

    claim   conditional put {job, state=SUBMITTING}      before the POST
    record  update {state=SUBMITTED, request_id, urls}    right after the POST answers

A retried submit then finds one of three things: nothing (submit), SUBMITTED (reuse the
request, pay nothing), or SUBMITTING (the answer was lost: the request may exist, so the
job fails as `model_submit_uncertain` instead of paying again).

`JobLedger.submit_once` runs the whole protocol: claim, take what the job holds while it
may be at the model (its budget: budget.py), submit, record; and on a failure that never
reached the model, give back what was taken and release the claim so a retry may submit.

The same table holds the webhook task tokens (see webhook_rendezvous.py); every item
expires by TTL (jobs/keys.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import (
    BudgetExceededError,
    ConcurrencyCapReachedError,
    ModelQueueUnavailableError,
    ModelRequestRejectedError,
    ModelSubmitUncertainError,
    StorageUnavailableError,
    aws_error_code,
)
from kontext_pipeline.core.models import QueueSubmission
from kontext_pipeline.core.observability import logger
from kontext_pipeline.jobs.keys import RECORD_TTL_SECONDS, job_item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

# A submit that never reached the model: nothing was accepted, so what the job took goes
# back and a retry may claim and submit again. Anything else from the submit (an answer
# lost on the way back) keeps the claim: the model may have the request.
NOT_SUBMITTED = (ModelQueueUnavailableError, ModelRequestRejectedError)
# A hold refused or not taken (the cap, the day's images, the table): nothing was submitted.
HOLD_NOT_TAKEN = (ConcurrencyCapReachedError, BudgetExceededError, StorageUnavailableError)


@dataclass(frozen=True)
class Hold:
    """Something a job takes before it pays, given back if its submit never reached the model.

    A failure to give it back is raised as is, and the claim then stays (as a lost answer
    would): nothing is released that might still be counted.
    """

    take: Callable[[], object]
    give_back: Callable[[], object]


@dataclass(frozen=True)
class JobLedger:
    dynamodb: DynamoDBClient
    table_name: str

    def submit_once(
        self,
        job_key: str,
        submit: Callable[[], QueueSubmission],
        holds: Sequence[Hold] = (),
    ) -> QueueSubmission:
        """The job's one submission: the recorded one if an earlier attempt made it.

        Holds are taken in order before the submit; a NOT_SUBMITTED failure gives back
        those taken (in the same order), releases the claim and is raised again.
        """
        earlier = self.claim_submit(job_key)
        if earlier is not None:
            logger.warning(
                "reusing the request an earlier attempt submitted",
                extra={"model_request_id": earlier.request_id},
            )
            return earlier
        taken: list[Hold] = []
        try:
            for hold in holds:
                hold.take()
                taken.append(hold)
        except HOLD_NOT_TAKEN:
            self._undo(job_key, taken)
            raise
        try:
            submission = submit()
        except NOT_SUBMITTED:
            self._undo(job_key, taken)
            raise
        try:
            self.record_submit(job_key, submission)
        except StorageUnavailableError:
            # The execution history still gets the request id from this task's result.
            logger.exception("submitted but not recorded in the jobs table")
        return submission

    def _undo(self, job_key: str, taken: Sequence[Hold]) -> None:
        """Nothing reached the model: give back what was taken, in order, then the claim."""
        for hold in taken:
            hold.give_back()
        self.release_claim(job_key)

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
