"""The spending cap: images per UTC day and requests at once, counted in the jobs table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kontext_pipeline.core.errors import BudgetExceededError, ConcurrencyCapReachedError
from kontext_pipeline.jobs.budget import Budget

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_images_are_counted_until_the_day_is_full(jobs_table: Any) -> None:
    # Given a cap of 5 images a day
    budget = Budget(jobs_table, "jobs", max_images_per_day=5)
    # When jobs ask for 2, 2 and then 2 more
    assert budget.spend_images(2, now=NOON) == 2
    assert budget.spend_images(2, now=NOON) == 4
    with pytest.raises(BudgetExceededError) as refused:
        budget.spend_images(2, now=NOON)
    # Then the third is refused, naming the cap and the day's count, and counts nothing
    assert refused.value.reason == "budget_exceeded"
    assert "MaxImagesPerDay is 5; 4 already submitted on 2026-11-26" in refused.value.message
    assert budget.images_spent(now=NOON) == 4
    # And one image still fits
    assert budget.spend_images(1, now=NOON) == 5


def test_a_new_utc_day_starts_from_zero(jobs_table: Any) -> None:
    # Given a day that is full
    budget = Budget(jobs_table, "jobs", max_images_per_day=1)
    budget.spend_images(1, now=NOON)
    # When the next UTC day comes
    tomorrow = NOON + timedelta(days=1)
    # Then its images count from zero
    assert budget.spend_images(1, now=tomorrow) == 1


def test_each_spend_reports_the_day_s_total_for_the_cap_alarm(jobs_table: Any) -> None:
    from kontext_pipeline.core.observability import metrics
    from kontext_pipeline.jobs.budget import SPENT_TODAY_METRIC

    # Given a cap of 10 images, and a day with 3 already spent
    budget = Budget(jobs_table, "jobs", max_images_per_day=10)
    budget.spend_images(3, now=NOON)
    metrics.clear_metrics()
    try:
        # When a job spends 2 more, and the next UTC day's first job 1
        budget.spend_images(2, now=NOON)
        budget.spend_images(1, now=NOON + timedelta(days=1))
        # Then the metric the daily-cap alarm watches carries each day's running total
        reported = metrics.metric_set[SPENT_TODAY_METRIC]["Value"]
    finally:
        metrics.clear_metrics()
    assert reported == [5.0, 1.0]


def test_concurrent_submits_never_pass_the_cap_together(jobs_table: Any) -> None:
    # Given a cap of 10 images, and every call the budget makes to the table recorded
    budget = Budget(jobs_table, "jobs", max_images_per_day=10)
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, params))

    jobs_table.meta.events.register("provide-client-params.dynamodb.*", record)

    def spend(_: int) -> bool:
        try:
            budget.spend_images(1, now=NOON)
        except BudgetExceededError:
            return False
        return True

    # When 30 submits of one image each ask
    accepted = sum(map(spend, range(30)))
    # Then exactly ten got through
    assert accepted == 10
    # And each ask is one conditional write and no read before it: DynamoDB applies the
    # condition and the increment to the item as one step, so submits racing each other
    # cannot both pass the cap (moto's in-process table does not lock, so the race itself
    # is not run here: it passes two writers' conditions now and then)
    writes = [params for name, params in calls if name == "UpdateItem"]
    assert [name for name, _ in calls if name != "GetItem"] == ["UpdateItem"] * 30
    assert all("images <= :room" in params["ConditionExpression"] for params in writes)
    assert budget.images_spent(now=NOON) == 10


def test_images_given_back_make_room_again(jobs_table: Any) -> None:
    # Given a full day
    budget = Budget(jobs_table, "jobs", max_images_per_day=2)
    budget.spend_images(2, now=NOON)
    # When a submit that never reached the model gives its images back
    budget.refund_images(2, now=NOON)
    # Then they can be spent again
    assert budget.spend_images(2, now=NOON) == 2


def test_no_cap_touches_nothing(jobs_table: Any) -> None:
    # Given caps of 0
    budget = Budget(jobs_table, "jobs")
    # When a job spends images and takes a slot
    assert budget.spend_images(4, now=NOON) is None
    assert budget.take_slot("job-a") is False
    # Then the table holds nothing
    assert jobs_table.scan(TableName="jobs")["Items"] == []


def test_a_job_over_the_concurrency_cap_waits_until_a_slot_is_freed(jobs_table: Any) -> None:
    # Given a cap of two requests at once, both held
    budget = Budget(jobs_table, "jobs", max_concurrent_requests=2)
    assert budget.take_slot("job-a") is True
    assert budget.take_slot("job-b") is True
    # When a third job asks
    with pytest.raises(ConcurrencyCapReachedError) as waiting:
        budget.take_slot("job-c")
    assert waiting.value.reason == "concurrency_cap_reached"
    # Then it gets one once a job ends
    assert budget.release_slot("job-a") is True
    assert budget.take_slot("job-c") is True


def test_a_slot_is_taken_and_freed_once_per_job(jobs_table: Any) -> None:
    # Given a job holding a slot, its submit retried
    budget = Budget(jobs_table, "jobs", max_concurrent_requests=1)
    budget.take_slot("job-a")
    assert budget.take_slot("job-a") is True
    # When its end is reported twice, and a job that never held one ends too
    assert budget.release_slot("job-a") is True
    assert budget.release_slot("job-a") is False
    assert budget.release_slot("job-b") is False
    # Then the counter is back at zero, not below: exactly one slot is free
    item = jobs_table.get_item(TableName="jobs", Key={"pk": {"S": "budget#in-flight"}})["Item"]
    assert item["requests"]["N"] == "0"
    assert budget.take_slot("job-c") is True
    with pytest.raises(ConcurrencyCapReachedError):
        budget.take_slot("job-d")
