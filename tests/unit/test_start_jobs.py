"""The trigger: one execution per object version, and nothing for what must not run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kontext_pipeline.steps.start_edit import JobStarter, StartEditDeps, source_from_s3_record
from kontext_pipeline.steps.start_edit import run as start_edit
from kontext_pipeline.storage.scope import EditScope

from tests.conftest import load_event

SCOPE = EditScope(input_prefix="inputs/", output_prefix="outputs/")


@pytest.fixture
def state_machine(aws: Any) -> tuple[Any, str]:
    sfn = aws.client("stepfunctions")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = sfn.create_state_machine(
        name="edit",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    return sfn, arn


def run(event_name: str, sfn: Any, arn: str) -> list[str]:
    deps = StartEditDeps(starter=JobStarter(sfn, arn), scope=SCOPE)
    outcomes = start_edit(load_event(event_name)["Records"], deps)
    return [outcome.outcome for outcome in outcomes]


def test_an_upload_starts_one_execution(state_machine: tuple[Any, str]) -> None:
    # Given the state machine and a plain S3 put event
    sfn, arn = state_machine
    # When the trigger handles it
    assert run("s3_put", sfn, arn) == ["started"]
    # Then one execution runs with the object in its input
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(executions) == 1
    started = json.loads(
        sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"]
    )
    assert started["source"]["key"] == "inputs/kitchen-table.jpg"
    assert started["source"]["version_id"] == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


def test_a_duplicate_delivery_starts_nothing_more(state_machine: tuple[Any, str]) -> None:
    # Given an event delivered twice in one batch, then once more later
    sfn, arn = state_machine
    # When the trigger handles both
    first = run("s3_put_duplicate", sfn, arn)
    again = run("s3_put", sfn, arn)
    # Then exactly one execution exists
    assert first == ["started", "duplicate"]
    assert again == ["duplicate"]
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_an_overwrite_is_a_new_job(state_machine: tuple[Any, str]) -> None:
    # Given an upload that started its job
    sfn, arn = state_machine
    assert run("s3_put", sfn, arn) == ["started"]
    # When the same key is overwritten (a new version, a new sequencer)
    assert run("s3_put_overwrite", sfn, arn) == ["started"]
    # Then that is a second job, not a duplicate
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2


@pytest.mark.parametrize(
    "event_name", ["s3_put_other_prefix", "s3_put_output_prefix", "s3_put_sidecar", "s3_delete"]
)
def test_what_is_not_an_upload_to_edit_starts_nothing(
    state_machine: tuple[Any, str], event_name: str
) -> None:
    # Given events for other prefixes, the pipeline's own outputs, a sidecar, a delete
    sfn, arn = state_machine
    # When handled / Then no execution starts (the output case is the recursion guard)
    outcomes = run(event_name, sfn, arn)
    assert set(outcomes) <= {"skipped"}
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_event_keys_are_url_decoded() -> None:
    # Given a key with spaces (+), an apostrophe and non-ASCII characters, URL-encoded
    record = load_event("s3_put_unicode_key")["Records"][0]
    # When read / Then the key is the object's real key
    assert source_from_s3_record(record).key == "inputs/holiday photos/café à l'aube ☕.png"


def test_execution_names_are_valid_and_stable() -> None:
    # Given the unicode-key object
    source = source_from_s3_record(load_event("s3_put_unicode_key")["Records"][0])
    # When named twice / Then the name is deterministic and only uses allowed characters
    name = source.execution_name
    assert name == source.execution_name
    assert len(name) <= 80
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name)


def test_a_listed_object_version_gets_the_name_its_upload_event_gave_it() -> None:
    # Given an upload event of a versioned bucket (version id and sequencer)
    from_event = source_from_s3_record(load_event("s3_put")["Records"][0])
    # When a backfill names the same version, listed: no sequencer, the ETag quoted
    listed = from_event.model_copy(update={"sequencer": None, "etag": f'"{from_event.etag}"'})
    # Then the names agree, so the backfill finds the job the trigger started
    assert listed.execution_name == from_event.execution_name
    # And without a version id, the sequencer and ETag still tell writes apart
    unversioned = from_event.model_copy(update={"version_id": None})
    resequenced = unversioned.model_copy(update={"sequencer": "0055AED6DCD90281E6"})
    assert unversioned.execution_name != resequenced.execution_name


def test_concurrent_deliveries_start_one_execution(state_machine: tuple[Any, str]) -> None:
    # Given the same event delivered to eight trigger instances at once
    from concurrent.futures import ThreadPoolExecutor

    sfn, arn = state_machine
    # When they all run
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = [
            item
            for batch in pool.map(lambda _: run("s3_put", sfn, arn), range(8))
            for item in batch
        ]
    # Then exactly one started the job and seven saw a duplicate
    assert sorted(outcomes) == ["duplicate"] * 7 + ["started"]
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


@pytest.mark.parametrize(
    ("event_name", "key"),
    [
        ("s3_multipart_upload", "inputs/big-scan.png"),
        ("s3_copy", "inputs/copied/kitchen-table.jpg"),
        ("s3_put_literal_plus", "inputs/c++ notes 1+1.png"),
        ("s3_put_unversioned", "inputs/kitchen-table.jpg"),
        ("s3_put_long_key", "inputs/" + "/".join(["very-long-folder-name"] * 40) + "/photo.jpg"),
    ],
)
def test_every_shape_of_upload_starts_its_job(
    state_machine: tuple[Any, str], event_name: str, key: str
) -> None:
    # Given an S3 event in one of the shapes S3 sends
    sfn, arn = state_machine
    # When handled / Then one job starts, for the object's real key, under a valid name
    assert run(event_name, sfn, arn) == ["started"]
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(execution["name"]) <= 80
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["source"]["key"] == key
