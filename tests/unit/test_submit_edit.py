"""SubmitEdit: everything checked before the paid call, then exactly one submit per upload."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kontext_pipeline.core.config import SubmitSettings
from kontext_pipeline.core.errors import (
    ConfigurationError,
    ModelQueueUnavailableError,
    ModelSubmitUncertainError,
    StorageUnavailableError,
)
from kontext_pipeline.core.models import JobStart, ModelJob, SourceObject, TaskEnvelope
from kontext_pipeline.core.settings_limits import PRESIGNED_INPUT_GRACE_SECONDS
from kontext_pipeline.jobs.store import JobsStore
from kontext_pipeline.model_queue.poll_plan import PollPlan
from kontext_pipeline.steps.submit_edit import (
    SubmitEditDeps,
    run,
)

from tests.conftest import JOBS_TABLE, load_event, make_image
from tests.fakes import FakeQueue

POLICY = SubmitSettings()


@dataclass(frozen=True)
class Upload:
    """The sample task's upload in a versioned bucket, and the jobs table."""

    s3: Any
    dynamodb: Any
    start: JobStart

    def submit(self, queue: FakeQueue, **policy: Any) -> ModelJob:
        """SubmitEdit on this upload, with the model's queue `queue`."""
        step = SubmitEditDeps(
            s3=self.s3,
            queue=queue,
            jobs=JobsStore(self.dynamodb, JOBS_TABLE),
            poll_plan=PollPlan(min_seconds=2, max_seconds=30, expected_model_seconds=20),
            policy=POLICY.model_copy(update=policy),
        )
        return run(self.start, step)

    def ledger_state(self) -> str | None:
        key = {"pk": {"S": f"job#{self.start.source.execution_name}"}}
        item = self.dynamodb.get_item(TableName=JOBS_TABLE, Key=key).get("Item")
        return item["state"]["S"] if item else None


@pytest.fixture
def upload(aws: Any, jobs_table: Any) -> Upload:
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
    return Upload(s3, jobs_table, start.model_copy(update={"source": source}))


def presigned_lifetime(url: str) -> float:
    """Seconds a presigned URL lives: SigV4 says so, SigV2 gives its end as a Unix time."""
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


def test_an_upload_is_submitted_once_and_recorded(upload: Upload) -> None:
    # Given an upload with its prompt in metadata
    queue = FakeQueue()
    # When SubmitEdit runs
    job = upload.submit(queue)
    # Then the model got one request with the prompt and a presigned URL of the image
    [body] = queue.submitted
    assert body["prompt"] == "Put a donut next to the flour."
    assert str(body["image_url"]).startswith("https://")
    # And the URL lives as long as the request may wait for the model, and a grace
    lives = presigned_lifetime(str(body["image_url"]))
    assert lives == pytest.approx(POLICY.queue_wait_seconds + PRESIGNED_INPUT_GRACE_SECONDS, abs=5)
    # And the job carries the request's URLs, its limits and its key, and the ledger has it
    assert isinstance(job, ModelJob)
    assert (job.request_id, job.job_key) == ("req-1", upload.start.source.execution_name)
    assert job.run_limit_seconds == POLICY.deadline_seconds
    assert upload.ledger_state() == "SUBMITTED"


def test_a_second_execution_of_the_upload_reuses_the_request(upload: Upload) -> None:
    # Given an upload already submitted
    queue = FakeQueue()
    first = upload.submit(queue)
    # When its submit runs again (a retry, or a duplicate execution of the same version)
    again = upload.submit(queue)
    # Then nothing is paid twice: the same request comes back
    assert again.request_id == first.request_id
    assert len(queue.submitted) == 1


def test_an_uncertain_submit_keeps_the_claim_and_is_never_sent_again(upload: Upload) -> None:
    # Given a queue whose answer to the submit is lost
    queue = FakeQueue(submit_error=ModelSubmitUncertainError("no answer"))
    with pytest.raises(ModelSubmitUncertainError):
        upload.submit(queue)
    # When the queue is fine again and the submit is retried
    queue.submit_error = None
    with pytest.raises(ModelSubmitUncertainError, match="not submitted again"):
        upload.submit(queue)
    # Then the claim stayed, and the retry submitted nothing
    assert upload.ledger_state() == "SUBMITTING"
    assert queue.submitted == []


def test_a_submit_that_never_reached_the_model_releases_the_claim(upload: Upload) -> None:
    # Given a queue that cannot be reached
    queue = FakeQueue(submit_error=ModelQueueUnavailableError("connect failed"))
    # When the submit fails
    with pytest.raises(ModelQueueUnavailableError):
        upload.submit(queue)
    # Then the claim is gone, so the state machine's retry submits
    assert upload.ledger_state() is None
    queue.submit_error = None
    assert upload.submit(queue).request_id == "req-1"


def test_webhook_mode_without_its_url_is_a_missing_setting(upload: Upload) -> None:
    # Given webhook mode, but no WEBHOOK_URL
    # When the job is submitted / Then it fails as a missing setting
    with pytest.raises(ConfigurationError) as caught:
        upload.submit(FakeQueue(), completion_mode="webhook")
    assert caught.value.reason == "missing_setting"
    # And before anything was claimed: fixed and rerun, the job submits
    assert upload.ledger_state() is None


def test_a_hold_error_from_the_queue_itself_keeps_the_claim(upload: Upload) -> None:
    # Given a queue whose submit fails with an error that only a hold may raise: its answer
    # says nothing about whether the model took the request
    queue = FakeQueue(submit_error=StorageUnavailableError("lost on the way back"))
    # When the submit fails
    with pytest.raises(StorageUnavailableError):
        upload.submit(queue)
    # Then the claim stays (a retry must not pay again)
    assert upload.ledger_state() == "SUBMITTING"


def test_webhook_mode_hands_the_model_its_url(upload: Upload) -> None:
    # Given webhook mode with the function URL
    queue = FakeQueue()
    url = "https://hook.example/"
    # When the job is submitted
    job = upload.submit(queue, completion_mode="webhook", webhook_url=url)
    # Then the model is told where to call, and the job waits for the webhook
    assert queue.webhook_urls == [url]
    assert job.completion_mode == "webhook"
