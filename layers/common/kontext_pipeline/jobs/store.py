"""The jobs table as the steps receive it: one store over one table.

Its one piece of protocol is the paid submit, in this order, in `submit_once`:

    claim      the job's submit (ledger.py): a retry finds the earlier request and pays nothing
    slot       one of MaxConcurrentRequests (budget.py): a full cap waits, holding nothing else
    images     the day's MaxImagesPerDay (budget.py)
    POST       the request to the model's queue
    record     the request id against the claim (ledger.py)

What was taken goes back only when the POST is known not to have reached the model
(refused, or never connected): the images, the slot, then the claim, so a retry may
submit. A POST whose answer was lost keeps all three: the model may have the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from kontext_pipeline.core.errors import (
    BudgetExceededError,
    ConcurrencyCapReachedError,
    ModelQueueUnavailableError,
    ModelRequestRejectedError,
    StorageUnavailableError,
)
from kontext_pipeline.core.models import QueueSubmission
from kontext_pipeline.core.observability import logger
from kontext_pipeline.jobs.budget import Budget
from kontext_pipeline.jobs.ledger import JobLedger
from kontext_pipeline.jobs.run_times import RecentRunTimes
from kontext_pipeline.jobs.webhook_rendezvous import expect_webhook

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

# A submit that never reached the model: nothing was accepted, so what the job took goes back.
NOT_SUBMITTED = (ModelQueueUnavailableError, ModelRequestRejectedError)
# A cap refused, or the table failed: that part was not taken, nothing was submitted.
NOT_TAKEN = (ConcurrencyCapReachedError, BudgetExceededError, StorageUnavailableError)


@dataclass(frozen=True)
class JobsStore:
    dynamodb: DynamoDBClient
    table_name: str
    # Run times are kept per model; a cap of 0 is no cap (and touches nothing).
    model_path: str = ""
    max_images_per_day: int = 0
    max_concurrent_requests: int = 0

    @cached_property
    def ledger(self) -> JobLedger:
        return JobLedger(self.dynamodb, self.table_name)

    @cached_property
    def budget(self) -> Budget:
        return Budget(
            self.dynamodb,
            self.table_name,
            max_images_per_day=self.max_images_per_day,
            max_concurrent_requests=self.max_concurrent_requests,
        )

    @cached_property
    def run_times(self) -> RecentRunTimes:
        return RecentRunTimes(self.dynamodb, self.table_name, self.model_path)

    def submit_once(
        self, job_key: str, submit: Callable[[], QueueSubmission], *, images: int, now: datetime
    ) -> QueueSubmission:
        """The job's one submission: claim, slot, images, POST, record (see above). One UTC
        day for the images and any refund, even if the submit straddles midnight."""
        earlier = self.ledger.claim_submit(job_key)
        if earlier is not None:
            logger.warning(
                "reusing the request an earlier attempt submitted",
                extra={"model_request_id": earlier.request_id},
            )
            return earlier
        try:
            self.budget.take_slot(job_key)
        except NOT_TAKEN:
            self.ledger.release_claim(job_key)
            raise
        try:
            self.budget.spend_images(images, now=now)
        except NOT_TAKEN:
            self.budget.release_slot(job_key)
            self.ledger.release_claim(job_key)
            raise
        try:
            submission = submit()
        except NOT_SUBMITTED:
            self.budget.refund_images(images, now=now)
            self.budget.release_slot(job_key)
            self.ledger.release_claim(job_key)
            raise
        try:
            self.ledger.record_submit(job_key, submission)
        except StorageUnavailableError:
            # The execution history still gets the request id from this task's result.
            logger.exception("submitted but not recorded in the jobs table")
        return submission

    def expect_webhook(self, request_id: str) -> None:
        """Mark a request this stack submitted: only its webhook is recorded."""
        expect_webhook(self.dynamodb, self.table_name, request_id)

    def release_slot(self, job_key: str) -> bool:
        """Free the job's request slot if it holds one (idempotent); True when one was freed."""
        return self.budget.release_slot(job_key)
