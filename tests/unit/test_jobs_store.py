"""The jobs table's paid submit, JobsStore.submit_once: claim, slot, images, POST, record,
and what is given back when (against moto's DynamoDB, with both caps on)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from kontext_pipeline.core.errors import (
    BudgetExceededError,
    ConcurrencyCapReachedError,
    ModelRequestRejectedError,
    ModelSubmitUncertainError,
    StorageUnavailableError,
)
from kontext_pipeline.core.models import QueueSubmission, utc_now
from kontext_pipeline.jobs.store import JobsStore

from tests.conftest import JOBS_TABLE

SUBMISSION = QueueSubmission(
    request_id="req-1",
    status_url="https://queue.example/req-1/status",
    response_url="https://queue.example/req-1",
    cancel_url="https://queue.example/req-1/cancel",
)


class Counter:
    """A submit that counts its calls, raising `error` instead when one is set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    def __call__(self) -> QueueSubmission:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return SUBMISSION


def store(dynamodb: Any, *, images_per_day: int = 4, at_once: int = 1) -> JobsStore:
    return JobsStore(
        dynamodb, JOBS_TABLE, max_images_per_day=images_per_day, max_concurrent_requests=at_once
    )


def submit_once(jobs: JobsStore, job_key: str, submit: Counter, images: int = 1) -> QueueSubmission:
    return jobs.submit_once(job_key, submit, images=images, now=utc_now())


def held(jobs: JobsStore) -> tuple[int, int]:
    """(requests at the model, images spent today) as the jobs table counts them."""
    item = jobs.dynamodb.get_item(TableName=JOBS_TABLE, Key={"pk": {"S": "budget#in-flight"}})
    requests = int(item.get("Item", {}).get("requests", {}).get("N", "0"))
    return requests, jobs.budget.images_spent()


def test_the_first_submit_pays_and_the_second_reuses_it(jobs_table: Any) -> None:
    # Given an empty jobs table
    jobs, submit = store(jobs_table), Counter()
    # When the same job submits twice
    first = submit_once(jobs, "job-a", submit)
    again = submit_once(jobs, "job-a", submit)
    # Then the model was called once, the second got the recorded request, one slot is held
    assert submit.calls == 1
    assert first == again == SUBMISSION
    assert held(jobs) == (1, 1)


def test_a_refused_post_gives_back_the_images_the_slot_and_the_claim(jobs_table: Any) -> None:
    # Given a queue that refuses the request
    jobs = store(jobs_table)
    # When the job submits
    with pytest.raises(ModelRequestRejectedError):
        submit_once(jobs, "job-b", Counter(ModelRequestRejectedError("401")), images=2)
    # Then nothing is held, and a retry may claim and submit
    assert held(jobs) == (0, 0)
    assert submit_once(jobs, "job-b", Counter()) == SUBMISSION


def test_a_day_without_images_left_gives_back_the_slot_before_paying(jobs_table: Any) -> None:
    # Given a day whose images are spent
    jobs, submit = store(jobs_table, images_per_day=1), Counter()
    submit_once(jobs, "job-c1", Counter())
    jobs.release_slot("job-c1")
    # When another job submits / Then it is refused before paying, holding no slot
    with pytest.raises(BudgetExceededError):
        submit_once(jobs, "job-c2", submit)
    assert (submit.calls, held(jobs)) == (0, (0, 1))


def test_a_full_concurrency_cap_takes_no_images(jobs_table: Any) -> None:
    # Given every request slot in use
    jobs, submit = store(jobs_table), Counter()
    submit_once(jobs, "job-d1", Counter())
    # When another job submits / Then it waits (the state machine retries), having spent nothing
    with pytest.raises(ConcurrencyCapReachedError):
        submit_once(jobs, "job-d2", submit)
    assert (submit.calls, held(jobs)) == (0, (1, 1))


def test_an_uncertain_submit_keeps_the_claim_the_slot_and_the_images(jobs_table: Any) -> None:
    # Given a submit whose answer was lost
    jobs = store(jobs_table)
    with pytest.raises(ModelSubmitUncertainError):
        submit_once(jobs, "job-e", Counter(ModelSubmitUncertainError("lost")))
    # When the job is retried / Then it is not sent again, and what it took stays taken
    retry = Counter()
    with pytest.raises(ModelSubmitUncertainError, match="not submitted again"):
        submit_once(jobs, "job-e", retry)
    assert (retry.calls, held(jobs)) == (0, (1, 1))


class BrokenTable:
    """A DynamoDB client whose item exists (the claim fails) but cannot be read."""

    def put_item(self, **_: Any) -> None:
        error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "exists"}}
        raise ClientError(error, "PutItem")  # type: ignore[arg-type]

    def get_item(self, **_: Any) -> None:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}
        raise ClientError(error, "GetItem")  # type: ignore[arg-type]


def test_an_unreadable_earlier_record_is_storage_unavailable() -> None:
    # Given a claimed job whose record cannot be read
    jobs = JobsStore(BrokenTable(), JOBS_TABLE)  # type: ignore[arg-type]
    # When it submits / Then the error is the pipeline's (retried), not botocore's
    with pytest.raises(StorageUnavailableError, match="ProvisionedThroughputExceeded"):
        submit_once(jobs, "job-f", Counter())


def test_a_missing_table_is_storage_unavailable(aws: Any) -> None:
    # Given a table that does not exist
    jobs = JobsStore(aws.client("dynamodb"), "no-such-table")
    # When a job claims its submit / Then it fails as storage_unavailable, nothing sent
    submit = Counter()
    with pytest.raises(StorageUnavailableError):
        submit_once(jobs, "job-g", submit)
    assert submit.calls == 0
