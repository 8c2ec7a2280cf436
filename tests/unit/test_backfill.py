"""Backfill items: one listed object -> its edit, started as the trigger starts it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kontext_pipeline.steps.start_backfill_edit import (
    BackfillItem,
    StartBackfillEditDeps,
    plan_backfill,
)
from kontext_pipeline.steps.start_backfill_edit import run as start_backfill_edit
from kontext_pipeline.steps.start_edit import (
    JobStarter,
    StartEditDeps,
    source_from_s3_record,
)
from kontext_pipeline.steps.start_edit import run as start_edit
from kontext_pipeline.storage.scope import EditScope

from tests.conftest import load_event

SCOPE = EditScope(input_prefix="inputs/", output_prefix="outputs/")
BUCKET = "kontext-images-example"


@pytest.fixture
def aws_setup(aws: Any) -> tuple[Any, Any, str]:
    s3, sfn = aws.client("s3"), aws.client("stepfunctions")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = sfn.create_state_machine(
        name="edit", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    return s3, sfn, arn


def item_for(key: str, **changes: Any) -> BackfillItem:
    event = load_event("task_start_backfill_edit")
    event["object"]["Key"] = key
    event.update(changes)
    return BackfillItem.model_validate(event)


def start(aws_setup: tuple[Any, Any, str], item: BackfillItem) -> str:
    s3, sfn, arn = aws_setup
    deps = StartBackfillEditDeps(s3=s3, starter=JobStarter(sfn, arn), scope=SCOPE)
    return start_backfill_edit(item, deps).outcome


def test_a_listed_object_starts_its_edit_with_the_backfills_request(
    aws_setup: tuple[Any, Any, str],
) -> None:
    # Given an object in the bucket and the Map's item for it (as the state machine spells it)
    s3, sfn, arn = aws_setup
    key = "inputs/archive/2025/kitchen-table.jpg"
    version = s3.put_object(Bucket=BUCKET, Key=key, Body=b"image")["VersionId"]
    # When the item is handled, then handled again (a second backfill)
    assert start(aws_setup, item_for(key)) == "started"
    assert start(aws_setup, item_for(key)) == "duplicate"
    # Then one execution carries the object's version and the backfill's request
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["source"]["version_id"] == version
    assert started["request"] == {"prompt": "Make it autumn.", "options": {"num_images": 2}}


def test_an_object_the_trigger_already_started_is_a_duplicate(
    aws_setup: tuple[Any, Any, str],
) -> None:
    # Given an upload whose S3 event the trigger handled
    s3, sfn, arn = aws_setup
    key = "inputs/kitchen-table.jpg"
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=b"image")
    record = load_event("s3_put")["Records"][0]
    record["s3"]["bucket"]["name"] = BUCKET
    record["s3"]["object"].update(versionId=put["VersionId"], eTag=put["ETag"].strip('"'))
    assert source_from_s3_record(record).version_id == put["VersionId"]
    [trigger] = start_edit([record], StartEditDeps(starter=JobStarter(sfn, arn), scope=SCOPE))
    assert trigger.outcome == "started"
    # When a backfill lists it
    # Then it is recognised: no second execution
    assert start(aws_setup, item_for(key, request=None)) == "duplicate"
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


@pytest.mark.parametrize(
    "key",
    ["outputs/kitchen-table/req/0.jpg", "inputs/a.jpg.prompt.txt", "inputs/folder/", "other/a.jpg"],
)
def test_what_the_trigger_skips_the_backfill_skips(
    aws_setup: tuple[Any, Any, str], key: str
) -> None:
    # Given a listed object the trigger would skip
    # When the backfill item runs / Then it is skipped too, nothing started
    assert start(aws_setup, item_for(key)) == "skipped"


def test_an_object_deleted_since_the_listing_is_skipped(aws_setup: tuple[Any, Any, str]) -> None:
    # Given a listed object deleted since the listing (never put in the bucket)
    # When the backfill item runs / Then it is skipped, not failed
    assert start(aws_setup, item_for("inputs/gone.jpg")) == "skipped"


def test_the_plan_counts_objects_and_the_models_price() -> None:
    # Given keys under a prefix, with a sidecar and an output among them
    keys = ["inputs/a.jpg", "inputs/b.png", "inputs/a.jpg.prompt.txt", "outputs/x/0.jpg"]
    request = item_for("inputs/a.jpg").request
    # When planned with the request's two images each
    plan = plan_backfill(keys, bucket=BUCKET, scope=SCOPE, request=request)
    # Then two objects would start, four images, $0.32 at the model
    assert (plan.objects, plan.skipped, plan.images) == (2, 2, 4)
    assert plan.model_cost_usd == pytest.approx(0.32)
