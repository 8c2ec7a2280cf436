"""The jobs table around the paid submit: JobLedger.submit_once and its three outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from kontext_pipeline.core.errors import (
    BudgetExceededError,
    ModelRequestRejectedError,
    ModelSubmitUncertainError,
    StorageUnavailableError,
)
from kontext_pipeline.core.models import QueueSubmission
from kontext_pipeline.jobs.ledger import Hold, JobLedger

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


def recording_hold(name: str, log: list[str], refuse: Exception | None = None) -> Hold:
    def take() -> None:
        if refuse is not None:
            raise refuse
        log.append(f"take {name}")

    return Hold(take=take, give_back=lambda: log.append(f"give back {name}"))


def test_the_first_submit_pays_and_the_second_reuses_it(jobs_table: Any) -> None:
    # Given an empty jobs table
    ledger, submit = JobLedger(jobs_table, JOBS_TABLE), Counter()
    # When the same job submits twice
    first = ledger.submit_once("job-a", submit)
    again = ledger.submit_once("job-a", submit)
    # Then the model was called once, and the second got the recorded request
    assert submit.calls == 1
    assert first == again == SUBMISSION


def test_holds_are_taken_before_the_submit_and_given_back_if_nothing_was_sent(
    jobs_table: Any,
) -> None:
    # Given two holds, and a queue that refuses the request
    ledger, log = JobLedger(jobs_table, JOBS_TABLE), list[str]()
    holds = [recording_hold("slot", log), recording_hold("images", log)]
    # When the job submits
    with pytest.raises(ModelRequestRejectedError):
        ledger.submit_once("job-b", Counter(ModelRequestRejectedError("401")), holds)
    # Then both were taken, then given back in the same order, and the claim was released
    assert log == ["take slot", "take images", "give back slot", "give back images"]
    assert ledger.submit_once("job-b", Counter()) == SUBMISSION


def test_a_refused_hold_gives_back_only_what_was_taken(jobs_table: Any) -> None:
    # Given a slot that is free and a day's images that are spent
    ledger, log = JobLedger(jobs_table, JOBS_TABLE), list[str]()
    refused = BudgetExceededError("MaxImagesPerDay is 3")
    holds = [recording_hold("slot", log), recording_hold("images", log, refuse=refused)]
    submit = Counter()
    # When the job submits / Then it is refused before paying, and only the slot goes back
    with pytest.raises(BudgetExceededError):
        ledger.submit_once("job-c", submit, holds)
    assert (submit.calls, log) == (0, ["take slot", "give back slot"])


def test_an_uncertain_submit_keeps_the_claim(jobs_table: Any) -> None:
    # Given a submit whose answer was lost
    ledger, log = JobLedger(jobs_table, JOBS_TABLE), list[str]()
    with pytest.raises(ModelSubmitUncertainError):
        ledger.submit_once(
            "job-d", Counter(ModelSubmitUncertainError("lost")), [recording_hold("slot", log)]
        )
    # When the job is retried / Then it is not sent again, and the slot stays held
    retry = Counter()
    with pytest.raises(ModelSubmitUncertainError, match="not submitted again"):
        ledger.submit_once("job-d", retry)
    assert (retry.calls, log) == (0, ["take slot"])


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
    ledger = JobLedger(BrokenTable(), JOBS_TABLE)  # type: ignore[arg-type]
    # When it submits / Then the error is the pipeline's (retried), not botocore's
    with pytest.raises(StorageUnavailableError, match="ProvisionedThroughputExceeded"):
        ledger.submit_once("job-e", Counter())


def test_a_missing_table_is_storage_unavailable(aws: Any) -> None:
    # Given a table that does not exist
    ledger = JobLedger(aws.client("dynamodb"), "no-such-table")
    # When a job claims its submit / Then it fails as storage_unavailable, nothing sent
    submit = Counter()
    with pytest.raises(StorageUnavailableError):
        ledger.submit_once("job-f", submit)
    assert submit.calls == 0
