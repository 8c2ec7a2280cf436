"""The spending cap through the local run: images per UTC day and requests at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

# Long enough that two jobs uploaded together overlap at the model.
SLOW_MODEL = EmulatorTiming(queue_seconds=0.1, run_seconds=2.0)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    parameters = {"MaxImagesPerDay": "4", "MaxConcurrentRequests": "1"}
    with LocalPipeline(emulator_timing=SLOW_MODEL, parameters=parameters) as running:
        yield running


def images_today(pipeline: LocalPipeline) -> int:
    table = pipeline.stack.physical_ids["JobsTable"]  # type: ignore[union-attr]
    key = f"budget#images#{datetime.now(UTC).date().isoformat()}"
    item = pipeline.clients.dynamodb.get_item(TableName=table, Key={"pk": {"S": key}})
    return int(item.get("Item", {}).get("images", {}).get("N", "0"))


def test_a_job_over_the_concurrency_cap_waits_instead_of_failing(pipeline: LocalPipeline) -> None:
    # Given one request allowed at once, and two uploads together
    first = pipeline.upload(make_image(), key="inputs/cap/first.png", prompt="make it snow")
    second = pipeline.upload(make_image(), key="inputs/cap/second.png", prompt="make it rain")
    # When both jobs run
    results = [pipeline.wait_for_notification(s, timeout=120).notification for s in (first, second)]
    # Then both succeed, and one of them waited for the other's slot first
    assert [n.status for n in results] == ["SUCCEEDED", "SUCCEEDED"]
    waited = [
        source.key
        for source in (first, second)
        if any(
            event.get("taskFailedEventDetails", {}).get("error") == "ConcurrencyCapReachedError"
            for event in pipeline.history(pipeline.execution_for(source)["executionArn"])  # type: ignore[index]
        )
    ]
    assert len(waited) == 1
    assert images_today(pipeline) == 2


def test_the_job_past_the_daily_cap_is_not_submitted_and_says_why(
    pipeline: LocalPipeline,
) -> None:
    # Given a cap of 4 images a day, 2 already submitted
    assert images_today(pipeline) == 2
    submits = pipeline.emulator.submit_count
    # When a job asks for 2 more, then one for 1 more
    fits = pipeline.upload(
        make_image(), key="inputs/cap/fits.png", prompt="make it green", options={"num_images": 2}
    )
    assert pipeline.wait_for_notification(fits).notification.status == "SUCCEEDED"
    over = pipeline.upload(make_image(), key="inputs/cap/over.png", prompt="make it blue")
    notification = pipeline.wait_for_notification(over).notification
    # Then the first fits the cap exactly, and the one after it is refused before the model
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == "budget_exceeded"
    today = datetime.now(UTC).date().isoformat()
    assert f"MaxImagesPerDay is 4; 4 already submitted on {today}" in notification.failure.message
    assert notification.request_id is None
    assert pipeline.emulator.submit_count == submits + 1
    assert images_today(pipeline) == 4
