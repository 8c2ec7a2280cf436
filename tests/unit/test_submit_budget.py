"""SubmitEdit and the spending cap: counted before paying, given back only when nothing
reached the model, and a waiting job holds nothing meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from kontext_pipeline.core.config import SubmitSettings
from kontext_pipeline.core.errors import (
    BudgetExceededError,
    ConcurrencyCapReachedError,
    ModelQueueUnavailableError,
)
from kontext_pipeline.core.models import JobStart, SourceObject
from kontext_pipeline.jobs.budget import IN_FLIGHT_KEY
from kontext_pipeline.jobs.store import JobsStore
from kontext_pipeline.model_queue.poll_plan import PollPlan
from kontext_pipeline.steps.submit_edit import SubmitEditDeps
from kontext_pipeline.steps.submit_edit import run as submit_edit

from tests.conftest import make_image
from tests.fakes import FakeQueue

BUCKET = "kontext-images-example"
POLICY = SubmitSettings()


@pytest.fixture
def world(aws: Any, jobs_table: Any) -> dict[str, Any]:
    s3, dynamodb = aws.client("s3"), jobs_table
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return {"s3": s3, "dynamodb": dynamodb, "queue": FakeQueue()}


def submit(world: dict[str, Any], key: str, jobs: JobsStore, images: int = 1) -> Any:
    put = world["s3"].put_object(
        Bucket=BUCKET,
        Key=key,
        Body=make_image(),
        Metadata={"prompt": "make it snow", "num-images": str(images)},
    )
    start = JobStart(source=SourceObject(bucket=BUCKET, key=key, version_id=put["VersionId"]))
    return submit_edit(start, step(world, jobs))


def step(world: dict[str, Any], jobs: JobsStore) -> SubmitEditDeps:
    return SubmitEditDeps(
        s3=world["s3"],
        queue=world["queue"],
        jobs=jobs,
        poll_plan=PollPlan(min_seconds=1, max_seconds=5, expected_model_seconds=1),
        policy=POLICY,
    )


def in_flight(world: dict[str, Any]) -> int:
    item = world["dynamodb"].get_item(TableName="jobs", Key={"pk": {"S": IN_FLIGHT_KEY}})
    return int(item.get("Item", {}).get("requests", {}).get("N", "0"))


def test_the_job_past_the_daily_cap_is_not_submitted_and_holds_nothing(
    world: dict[str, Any],
) -> None:
    # Given a cap of 3 images a day and of 5 requests at once
    jobs = JobsStore(world["dynamodb"], "jobs", max_images_per_day=3, max_concurrent_requests=5)
    submit(world, "inputs/a.png", jobs, images=2)
    # When a job asks for 2 more
    with pytest.raises(BudgetExceededError, match="MaxImagesPerDay is 3; 2 already submitted"):
        submit(world, "inputs/b.png", jobs, images=2)
    # Then it was not submitted, its slot went back, and it can be tried again later
    assert len(world["queue"].submitted) == 1
    assert in_flight(world) == 1
    assert jobs.budget.images_spent() == 2


def test_a_job_that_must_wait_keeps_no_images_and_submits_once_a_slot_is_free(
    world: dict[str, Any],
) -> None:
    # Given one request at once, held, and a cap of 2 images
    jobs = JobsStore(world["dynamodb"], "jobs", max_images_per_day=2, max_concurrent_requests=1)
    submit(world, "inputs/a.png", jobs)
    # When a second job finds the slot taken
    with pytest.raises(ConcurrencyCapReachedError):
        submit(world, "inputs/b.png", jobs)
    # Then it kept no image, so the day's last image is still there for it (or another)
    assert jobs.budget.images_spent() == 1
    # And once the first job ends, its retry submits
    assert jobs.release_slot(
        next(
            item["pk"]["S"].removeprefix("job#")
            for item in world["dynamodb"].scan(TableName="jobs")["Items"]
            if item.get("holds_slot")
        )
    )
    assert submit(world, "inputs/b.png", jobs).request_id == "req-2"


def test_a_submit_that_never_reached_the_model_gives_everything_back(
    world: dict[str, Any],
) -> None:
    # Given caps, and a queue that cannot be reached
    jobs = JobsStore(world["dynamodb"], "jobs", max_images_per_day=4, max_concurrent_requests=1)
    world["queue"].submit_error = ModelQueueUnavailableError("the queue is down")
    # When a job is submitted
    with pytest.raises(ModelQueueUnavailableError):
        submit(world, "inputs/a.png", jobs, images=3)
    # Then its images and its slot are back, and its retry submits once the queue is up
    assert (jobs.budget.images_spent(), in_flight(world)) == (0, 0)
    world["queue"].submit_error = None
    assert submit(world, "inputs/a.png", jobs, images=3).request_id == "req-1"
    assert (jobs.budget.images_spent(), in_flight(world)) == (3, 1)


def test_a_retried_submit_reuses_the_request_and_counts_nothing_twice(
    world: dict[str, Any],
) -> None:
    # Given a job already submitted
    jobs = JobsStore(world["dynamodb"], "jobs", max_images_per_day=4, max_concurrent_requests=2)
    first = submit(world, "inputs/a.png", jobs, images=2)
    # When its submit task runs again (a retry after a lost answer on the way back)
    again = submit_edit(JobStart(source=first.source), step(world, jobs))
    # Then it is the same request, and neither cap counted it again
    assert again.request_id == first.request_id
    assert len(world["queue"].submitted) == 1
    assert (jobs.budget.images_spent(), in_flight(world)) == (2, 1)
