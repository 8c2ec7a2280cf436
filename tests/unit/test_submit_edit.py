"""SubmitEdit: everything checked before the paid call, then exactly one submit per upload."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from kontext_pipeline.budget import Budget
from kontext_pipeline.errors import (
    ConfigurationError,
    ModelQueueUnavailableError,
    ModelSubmitUncertainError,
)
from kontext_pipeline.ledger import JobLedger
from kontext_pipeline.models import JobStart, ModelJob, SourceObject, TaskEnvelope
from kontext_pipeline.polling import PollPlan
from kontext_pipeline.steps.submit_edit import SubmitEdit, SubmitPolicy, submit_edit

from tests.conftest import JOBS_TABLE, load_event, make_image
from tests.fakes import FakeQueue

POLICY = SubmitPolicy(max_input_bytes=25 * 1024 * 1024, max_input_pixels=40_000_000)


@pytest.fixture
def upload(aws: Any, jobs_table: Any) -> tuple[Any, JobStart]:
    """The sample task's upload, put into a versioned bucket with its prompt."""
    start = TaskEnvelope[JobStart].model_validate(load_event("task_submit_edit")).job
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=start.source.bucket)
    s3.put_bucket_versioning(
        Bucket=start.source.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    put = s3.put_object(
        Bucket=start.source.bucket,
        Key=start.source.key,
        Body=make_image("JPEG"),
        Metadata={"prompt": "Put a donut next to the flour."},
    )
    source = SourceObject(
        bucket=start.source.bucket, key=start.source.key, version_id=put["VersionId"]
    )
    return s3, start.model_copy(update={"source": source})


def step_for(s3: Any, dynamodb: Any, queue: FakeQueue, **policy: Any) -> SubmitEdit:
    return SubmitEdit(
        s3=s3,
        queue=queue,
        ledger=JobLedger(dynamodb, JOBS_TABLE),
        budget=Budget(dynamodb, JOBS_TABLE),
        poll_plan=PollPlan(min_seconds=2, max_seconds=30, expected_model_seconds=20),
        policy=replace(POLICY, **policy),
    )


def job_state(dynamodb: Any, start: JobStart) -> str | None:
    key = {"pk": {"S": f"job#{start.source.execution_name}"}}
    item = dynamodb.get_item(TableName=JOBS_TABLE, Key=key).get("Item")
    return item["state"]["S"] if item else None


def test_an_upload_is_submitted_once_and_recorded(
    upload: tuple[Any, JobStart], jobs_table: Any
) -> None:
    # Given an upload with its prompt in metadata
    s3, start = upload
    queue = FakeQueue()
    # When SubmitEdit runs
    job = submit_edit(start, step_for(s3, jobs_table, queue))
    # Then the model got one request with the prompt and a presigned URL of the image
    [body] = queue.submitted
    assert body["prompt"] == "Put a donut next to the flour."
    assert str(body["image_url"]).startswith("https://")
    # And the job carries the request's URLs, its limits and its key, and the ledger has it
    assert isinstance(job, ModelJob)
    assert (job.request_id, job.job_key) == ("req-1", start.source.execution_name)
    assert job.run_limit_seconds == POLICY.deadline_seconds
    assert job_state(jobs_table, start) == "SUBMITTED"


def test_a_second_execution_of_the_upload_reuses_the_request(
    upload: tuple[Any, JobStart], jobs_table: Any
) -> None:
    # Given an upload already submitted
    s3, start = upload
    queue = FakeQueue()
    first = submit_edit(start, step_for(s3, jobs_table, queue))
    # When its submit runs again (a retry, or a duplicate execution of the same version)
    again = submit_edit(start, step_for(s3, jobs_table, queue))
    # Then nothing is paid twice: the same request comes back
    assert again.request_id == first.request_id
    assert len(queue.submitted) == 1


def test_an_uncertain_submit_keeps_the_claim_and_is_never_sent_again(
    upload: tuple[Any, JobStart], jobs_table: Any
) -> None:
    # Given a queue whose answer to the submit is lost
    s3, start = upload
    queue = FakeQueue(submit_error=ModelSubmitUncertainError("no answer"))
    with pytest.raises(ModelSubmitUncertainError):
        submit_edit(start, step_for(s3, jobs_table, queue))
    # When the queue is fine again and the submit is retried
    queue.submit_error = None
    with pytest.raises(ModelSubmitUncertainError, match="not submitted again"):
        submit_edit(start, step_for(s3, jobs_table, queue))
    # Then the claim stayed, and the retry submitted nothing
    assert job_state(jobs_table, start) == "SUBMITTING"
    assert queue.submitted == []


def test_a_submit_that_never_reached_the_model_releases_the_claim(
    upload: tuple[Any, JobStart], jobs_table: Any
) -> None:
    # Given a queue that cannot be reached
    s3, start = upload
    queue = FakeQueue(submit_error=ModelQueueUnavailableError("connect failed"))
    # When the submit fails
    with pytest.raises(ModelQueueUnavailableError):
        submit_edit(start, step_for(s3, jobs_table, queue))
    # Then the claim is gone, so the state machine's retry submits
    assert job_state(jobs_table, start) is None
    queue.submit_error = None
    assert submit_edit(start, step_for(s3, jobs_table, queue)).request_id == "req-1"


def test_webhook_mode_without_its_url_is_a_missing_setting(
    upload: tuple[Any, JobStart], jobs_table: Any
) -> None:
    # Given webhook mode, but no WEBHOOK_URL
    s3, start = upload
    step = step_for(s3, jobs_table, FakeQueue(), completion_mode="webhook")
    # When the job is submitted / Then it fails as a missing setting
    with pytest.raises(ConfigurationError) as caught:
        submit_edit(start, step)
    assert caught.value.reason == "missing_setting"


def test_webhook_mode_hands_the_model_its_url(
    upload: tuple[Any, JobStart], jobs_table: Any
) -> None:
    # Given webhook mode with the function URL
    s3, start = upload
    queue = FakeQueue()
    url = "https://hook.example/"
    # When the job is submitted
    job = submit_edit(
        start, step_for(s3, jobs_table, queue, completion_mode="webhook", webhook_url=url)
    )
    # Then the model is told where to call, and the job waits for the webhook
    assert queue.webhook_urls == [url]
    assert job.completion_mode == "webhook"
