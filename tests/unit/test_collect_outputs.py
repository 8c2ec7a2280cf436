"""CollectOutputs: every output into S3, the manifest last, one success notification."""

from __future__ import annotations

from typing import Any

import pytest
from kontext_pipeline.core.errors import ModelRequestFailedError
from kontext_pipeline.core.models import ModelJob, ModelResult, TaskEnvelope
from kontext_pipeline.jobs.store import JobsStore
from kontext_pipeline.steps.collect_outputs import CollectOutputsDeps, run
from kontext_pipeline.storage.output_origins import OutputPolicy
from kontext_pipeline.storage.scope import EditScope

from tests.conftest import JOBS_TABLE, data_uri, load_event, make_image
from tests.fakes import FakePublisher, FakeQueue, sample_job

POLICY = OutputPolicy.for_queue(
    "https://queue.fal.run", allowed_hosts=("fal.media",), allow_http=False, max_bytes=10**7
)
SCOPE = EditScope(input_prefix="inputs/", output_prefix="outputs/")


@pytest.fixture
def job(aws: Any) -> ModelJob:
    """The sample CheckStatus task's job, completed, in a bucket of its own."""
    job = sample_job()
    aws.client("s3").create_bucket(Bucket=job.source.bucket)
    return job.model_copy(update={"status": "COMPLETED", "run_seconds": 6.0, "job_key": "k"})


def model_result(images: int = 2) -> ModelResult:
    """The sample result, its images as data: URIs (the model's sync mode), so no HTTP."""
    result = load_event("fal_result")
    image = result["images"][0]
    result["images"] = [{**image, "url": data_uri(make_image())} for _ in range(images)]
    return ModelResult.model_validate(result)


def step_for(
    aws: Any, jobs_table: Any, queue: FakeQueue, publisher: FakePublisher
) -> CollectOutputsDeps:
    return CollectOutputsDeps(
        s3=aws.client("s3"),
        http=None,  # type: ignore[arg-type]  # data: URIs only: nothing is downloaded
        queue=queue,
        publisher=publisher,
        scope=SCOPE,
        policy=POLICY,
        jobs=JobsStore(
            jobs_table, JOBS_TABLE, "fal-ai/flux-pro/kontext/max", max_concurrent_requests=2
        ),
    )


def test_the_outputs_and_manifest_are_stored_and_the_success_published(
    aws: Any, jobs_table: Any, job: ModelJob
) -> None:
    # Given a completed job whose result has two images, and a slot it holds
    queue, publisher = FakeQueue(outcome=model_result(images=2)), FakePublisher()
    step = step_for(aws, jobs_table, queue, publisher)
    assert step.jobs.budget.take_slot("k")
    # When CollectOutputs runs
    notification = run(TaskEnvelope(job=job, execution_id="exec-1"), step)
    # Then both images and the manifest are under the output folder of the request
    keys = {
        o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=job.source.bucket)["Contents"]
    }
    folder = f"outputs/kitchen-table/{job.request_id}/"
    assert keys == {folder + "0.png", folder + "1.png", folder + "manifest.json"}
    # And one success names them, the slot is free, and the run time is kept
    assert publisher.published == [notification]
    assert notification.status == "SUCCEEDED"
    assert notification.manifest_uri == f"s3://{job.source.bucket}/{folder}manifest.json"
    assert [o.width for o in notification.outputs] == [1024, 1024]
    assert step.jobs.release_slot("k") is False
    assert step.jobs.run_times.typical_seconds() == 6.0


def test_a_retry_after_the_copy_only_publishes(aws: Any, jobs_table: Any, job: ModelJob) -> None:
    # Given a job whose outputs and manifest are already stored
    publisher = FakePublisher()
    run(
        TaskEnvelope(job=job),
        step_for(aws, jobs_table, FakeQueue(outcome=model_result()), publisher),
    )
    # When CollectOutputs runs again, with the model's result gone
    again = run(TaskEnvelope(job=job), step_for(aws, jobs_table, FakeQueue(), publisher))
    # Then it publishes from the manifest, without fetching the result
    assert again.outputs == publisher.published[0].outputs
    assert len(publisher.published) == 2


def test_a_result_without_images_fails_as_no_outputs(
    aws: Any, jobs_table: Any, job: ModelJob
) -> None:
    # Given a result with no images
    queue, publisher = FakeQueue(outcome=model_result(images=0)), FakePublisher()
    # When CollectOutputs runs / Then the job fails as no_outputs and nothing is published
    with pytest.raises(ModelRequestFailedError) as caught:
        run(TaskEnvelope(job=job), step_for(aws, jobs_table, queue, publisher))
    assert caught.value.reason == "no_outputs"
    assert publisher.published == []
