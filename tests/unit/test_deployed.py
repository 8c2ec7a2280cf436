"""The deployed-stack client read from Step Functions and CloudFormation as they answer:
where a job stands, what recent jobs did and cost, and what teardown removes or refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kontext_tools.deployed import (
    DeployedStackError,
    job_progress,
    list_jobs,
    teardown_stack,
)
from tests.conftest import load_event

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:Edit:kitchen-table"
STARTED = datetime(2026, 11, 25, 10, 15, 30, tzinfo=UTC)


class FakeStepFunctions:
    """One execution: its description and its history, as Step Functions returns them."""

    def __init__(self, described: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.described = {"executionArn": EXECUTION, **described}
        self.events = events

    def get_paginator(self, operation: str) -> FakeStepFunctions:
        assert operation == "list_executions"
        return self

    def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
        yield {"executions": [{"executionArn": EXECUTION, "startDate": STARTED}]}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        assert executionArn == EXECUTION
        return self.described

    def get_execution_history(self, executionArn: str, maxResults: int) -> dict[str, Any]:  # noqa: N803
        return {"events": self.events}


def entered(state: str, state_input: Any = None, second: int = 0) -> dict[str, Any]:
    details = {"name": state, "input": json.dumps(state_input or {})}
    return {"timestamp": STARTED + timedelta(seconds=second), "stateEnteredEventDetails": details}


def returned(payload: Any) -> dict[str, Any]:
    """A Lambda task's success event, its result under Payload as the lambda:invoke task has it."""
    return {"taskSucceededEventDetails": {"output": json.dumps({"Payload": payload})}}


def failed_job_history() -> FakeStepFunctions:
    """A job the model queued at position 3, then failed (the sample failure's input)."""
    checked = {**load_event("task_check_status")["job"], "queue_position": 3}
    failure = load_event("task_report_failure")["job"]
    return FakeStepFunctions(
        {
            "status": "FAILED",
            "input": json.dumps({"source": failure["source"]}),
            "error": "ModelRequestFailedError",
            "cause": "model_image_load_error",
            "stopDate": STARTED + timedelta(seconds=12.34),
        },
        [
            entered("SubmitEdit"),
            returned(checked),
            entered("CheckStatus", second=2),
            entered("ReportFailure", failure, second=3),
            returned({"status": "FAILED"}),
        ],
    )


def test_progress_shows_the_last_state_the_model_status_and_the_failure_message() -> None:
    # Given a job that was queued, then failed
    stepfunctions = failed_job_history()
    # When its progress is read
    progress = job_progress(stepfunctions, {"executionArn": EXECUTION})
    # Then it is in the failure branch, with the model's last status and the failure's words
    assert progress.execution_status == "FAILED"
    assert progress.state == "ReportFailure"
    assert [state for _, state in progress.history] == [
        "SubmitEdit",
        "CheckStatus",
        "ReportFailure",
    ]
    assert (progress.model_status, progress.queue_position) == ("IN_QUEUE", 3)
    assert progress.failure_message == (
        "the model reported: Image could not be loaded from image_url"
    )
    assert progress.prompt == "Put a donut next to the flour."
    assert progress.output is None


def test_a_recent_job_says_its_key_request_time_transitions_and_cost() -> None:
    # Given the same failed job
    stepfunctions = failed_job_history()
    # When the recent jobs are listed
    (job,) = list_jobs(stepfunctions, EXECUTION)
    # Then the summary has what the job did, and a failure's cost is its transitions only
    document = job.document()
    assert list(document) == [
        "key",
        "status",
        "reason",
        "request_id",
        "started_at",
        "seconds",
        "transitions",
        "images",
        "cost_usd",
        "execution",
    ]
    assert document["key"] == "inputs/kitchen-table.jpg"
    assert document["status"] == "FAILED"
    assert document["reason"] == "model_image_load_error"
    assert document["request_id"] == "e36fc67f-afa7-416a-a288-50d90a630d7a"
    assert document["seconds"] == 12.3
    assert (document["transitions"], document["images"]) == (3, 0)
    assert document["cost_usd"] == round(3 * 0.025 / 1000, 4)


def test_jobs_started_before_since_are_left_out() -> None:
    # Given a job started at STARTED
    stepfunctions = failed_job_history()
    # When only jobs since a minute later are asked for, Then there are none
    later = STARTED + timedelta(minutes=1)
    assert list_jobs(stepfunctions, EXECUTION, since=later) == []


class FakeCloudFormation:
    def __init__(self, stack: dict[str, Any]) -> None:
        self.stack = {"StackName": "kontext", **stack}
        self.deleted: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return {"Stacks": [self.stack]}

    def delete_stack(self, StackName: str) -> None:  # noqa: N803
        self.deleted.append(StackName)

    def get_waiter(self, name: str) -> FakeCloudFormation:
        assert name == "stack_delete_complete"
        return self

    def wait(self, StackName: str) -> None:  # noqa: N803
        return


class FakeS3:
    """A bucket that exists, holding two versions and a delete marker."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.deleted_objects: list[dict[str, str]] = []
        self.deleted_buckets: list[str] = []

    def head_bucket(self, Bucket: str) -> None:  # noqa: N803 - boto3's name
        assert Bucket == self.bucket

    def get_paginator(self, operation: str) -> FakeS3:
        assert operation == "list_object_versions"
        return self

    def paginate(self, Bucket: str) -> Iterator[dict[str, Any]]:  # noqa: N803
        yield {
            "Versions": [{"Key": "a", "VersionId": "1"}, {"Key": "a", "VersionId": "2"}],
            "DeleteMarkers": [{"Key": "b", "VersionId": "3"}],
        }

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> None:  # noqa: N803
        self.deleted_objects.extend(Delete["Objects"])

    def delete_bucket(self, Bucket: str) -> None:  # noqa: N803
        self.deleted_buckets.append(Bucket)


STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/kontext/0b1c2d3e-aaaa"


def test_a_rolled_back_stack_is_deleted_with_the_bucket_its_id_names() -> None:
    # Given a first deploy that rolled back: no outputs, only the template's description
    cloudformation = FakeCloudFormation(
        {
            "StackId": STACK_ID,
            "StackStatus": "ROLLBACK_COMPLETE",
            "Description": "kontext-pipeline: edit images",
        }
    )
    s3 = FakeS3("kontext-images-0b1c2d3e-aaaa")
    # When it is torn down
    teardown = teardown_stack(cloudformation, s3, "kontext", keep_bucket=False)
    # Then the stack goes by its id, and the bucket its id names is emptied and removed
    assert cloudformation.deleted == [STACK_ID]
    assert [item["VersionId"] for item in s3.deleted_objects] == ["1", "2", "3"]
    assert s3.deleted_buckets == ["kontext-images-0b1c2d3e-aaaa"]
    assert teardown.summary() == (
        "stack kontext deleted (it was ROLLBACK_COMPLETE); removed 3 object versions and "
        "s3://kontext-images-0b1c2d3e-aaaa"
    )


@pytest.mark.parametrize(
    ("stack", "reason"),
    [
        ({"StackStatus": "UPDATE_IN_PROGRESS", "Description": "kontext-pipeline"}, "stack_busy"),
        ({"StackStatus": "CREATE_COMPLETE", "Description": "something else"}, "stack_unavailable"),
    ],
)
def test_a_stack_that_is_changing_or_not_ours_is_not_deleted(
    stack: dict[str, Any], reason: str
) -> None:
    # Given a stack still changing, or one that is not a kontext-pipeline stack
    cloudformation = FakeCloudFormation({"StackId": STACK_ID, **stack})
    # When teardown is asked for, Then it refuses and deletes nothing
    with pytest.raises(DeployedStackError) as refused:
        teardown_stack(cloudformation, FakeS3("b"), "kontext", keep_bucket=False)
    assert refused.value.reason == reason
    assert cloudformation.deleted == []


def test_a_versioned_upload_finds_its_execution_by_name_and_a_key_alone_by_search(
    aws: Any,
) -> None:
    # Given a state machine with an execution started, as the trigger starts it, for a
    # versioned upload, and a newer one for another object
    from kontext_pipeline.core.models import SourceObject

    from kontext_tools.deployed import find_execution

    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="edit",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    upload = SourceObject(bucket="images", key="inputs/cat.jpg", version_id="v1")
    other = SourceObject(bucket="images", key="inputs/dog.jpg", version_id="v9")
    for source in (upload, other):
        sfn.start_execution(
            stateMachineArn=machine,
            name=source.execution_name,
            input=json.dumps({"source": source.model_dump(mode="json")}),
        )
    # When each is looked up: by its version, by its key alone, and one never started
    by_version = find_execution(sfn, machine, upload)
    by_key = find_execution(sfn, machine, SourceObject(bucket="images", key="inputs/cat.jpg"))
    not_started = SourceObject(bucket="images", key="inputs/cat.jpg", version_id="v2")
    # Then the version finds its own execution, the key search the same one, and no
    # execution is made up for a version never started
    assert by_version is not None
    assert by_version["name"] == upload.execution_name
    assert by_key is not None
    assert by_key["executionArn"] == by_version["executionArn"]
    assert find_execution(sfn, machine, not_started) is None
