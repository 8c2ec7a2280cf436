"""A job that fails before SubmitEdit returns still names its prompt and object version.

Its state then holds only the event's object (no prompt; no version when the event had
none, as moto's and unversioned buckets' events), so the failure branch reads them back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kontext_pipeline.core.models import TaskEnvelope
from kontext_pipeline.notifications.publish import Notifier
from kontext_pipeline.steps.report_failure import ReportFailureDeps, run

INVALID_INPUT = {"Error": "InvalidInputError", "Cause": "not_an_image: s3://b/k is not an image"}


@pytest.fixture
def notifier(aws: Any, jobs_table: Any) -> Notifier:
    dynamodb = jobs_table
    return Notifier(
        sns=aws.client("sns"),
        topic_arn=aws.client("sns").create_topic(Name="jobs")["TopicArn"],
        events=aws.client("events"),
        event_bus_name="default",
        dynamodb=dynamodb,
        table_name="jobs",
    )


@pytest.fixture
def s3(aws: Any) -> Any:
    client = aws.client("s3")
    client.create_bucket(Bucket="images")
    client.put_bucket_versioning(Bucket="images", VersioningConfiguration={"Status": "Enabled"})
    return client


def failed_at_submit(put: dict[str, Any], key: str) -> dict[str, Any]:
    """The failure branch's state when SubmitEdit failed: the execution input plus the error."""
    source = {"bucket": "images", "key": key, "etag": put["ETag"].strip('"')}
    return {"source": source, "received_at": "2026-11-26T10:00:00Z", "error": INVALID_INPUT}


def test_the_prompt_and_version_are_read_back_for_a_failure_at_submit(
    s3: Any, notifier: Notifier
) -> None:
    # Given an upload with its prompt in metadata, whose job failed before SubmitEdit returned
    put = s3.put_object(
        Bucket="images", Key="inputs/a.jpg", Body=b"text", Metadata={"prompt": "make it snow"}
    )
    # When the failure is reported
    notification = run(
        TaskEnvelope(job=failed_at_submit(put, "inputs/a.jpg")), ReportFailureDeps(notifier, s3=s3)
    )
    # Then it carries the prompt and the version, as a success would
    assert notification.prompt == "make it snow"
    assert notification.source.version_id == put["VersionId"]
    assert notification.failure is not None
    assert notification.failure.reason == "not_an_image"


def test_the_prompt_of_an_upload_with_a_null_version_is_read_back(
    s3: Any, notifier: Notifier
) -> None:
    # Given an upload written while versioning was off, whose event named its version "null"
    s3.create_bucket(Bucket="plain")
    put = s3.put_object(Bucket="plain", Key="inputs/n.jpg", Body=b"t", Metadata={"prompt": "fog"})
    state = failed_at_submit(put, "inputs/n.jpg")
    state["source"] |= {"bucket": "plain", "version_id": "null"}
    # When the failure is reported
    notification = run(TaskEnvelope(job=state), ReportFailureDeps(notifier, s3=s3))
    # Then the upload was read unpinned ("null" is no version id to send), its prompt found
    assert notification.prompt == "fog"
    assert notification.source.version_id == "null"


def test_a_prompt_from_the_sidecar_is_read_back_too(s3: Any, notifier: Notifier) -> None:
    # Given an upload whose prompt is in its sidecar, whose job failed at submit
    s3.put_object(Bucket="images", Key="inputs/b.jpg.prompt.txt", Body=b"a long prompt")
    put = s3.put_object(Bucket="images", Key="inputs/b.jpg", Body=b"text")
    # When the failure is reported
    notification = run(
        TaskEnvelope(job=failed_at_submit(put, "inputs/b.jpg")), ReportFailureDeps(notifier, s3=s3)
    )
    # Then the sidecar's prompt is named, as a success would name it
    assert notification.prompt == "a long prompt"


def test_an_upload_overwritten_since_lends_nothing(s3: Any, notifier: Notifier) -> None:
    # Given the failed upload was overwritten by another before the failure branch ran
    first = s3.put_object(
        Bucket="images", Key="inputs/c.jpg", Body=b"one", Metadata={"prompt": "1"}
    )
    s3.put_object(Bucket="images", Key="inputs/c.jpg", Body=b"two", Metadata={"prompt": "2"})
    # When reported / Then nothing of the newer upload is attributed to it
    notification = run(
        TaskEnvelope(job=failed_at_submit(first, "inputs/c.jpg")),
        ReportFailureDeps(notifier, s3=s3),
    )
    assert (notification.prompt, notification.source.version_id) == (None, None)


def test_the_failure_is_reported_even_when_s3_cannot_be_read(s3: Any, notifier: Notifier) -> None:
    # Given the object's bucket is gone (or the role may not read it)
    state = {
        "source": {"bucket": "no-such-bucket", "key": "inputs/d.jpg"},
        "error": INVALID_INPUT,
    }
    # When reported / Then the failure goes out without them
    notification = run(TaskEnvelope(job=state), ReportFailureDeps(notifier, s3=s3))
    assert notification.status == "FAILED"
    assert (notification.prompt, notification.source.version_id) == (None, None)


def test_a_state_that_already_knows_both_is_not_read_again(notifier: Notifier) -> None:
    # Given the state of a job that failed after submit (a ModelJob: prompt and version known)
    state = {
        "source": {"bucket": "images", "key": "inputs/e.jpg", "version_id": "v1"},
        "prompt": "known",
        "error": {"Error": "ModelRequestFailedError", "Cause": json.dumps({"errorMessage": "x"})},
    }

    class NoS3:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"S3 was called: {name}")

    # When reported / Then S3 is left alone and the state's values are used
    notification = run(TaskEnvelope(job=state), ReportFailureDeps(notifier, s3=NoS3()))
    assert (notification.prompt, notification.source.version_id) == ("known", "v1")
