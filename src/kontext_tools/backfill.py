"""Start, follow and plan a backfill of a deployed (or local) stack.

The stack's `BackfillStateMachine` does the work (layers/common/kontext_pipeline/
backfill.py); this module starts it with `{"prefix", "request", "max_concurrency"}`,
waits for it, and reads its counts: each child adds its object's outcome to the run's
tally item in the jobs table (the Map's own results go to S3, never inline).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.models import EditOverrides
from kontext_pipeline.jobs.keys import item_key
from kontext_pipeline.steps.start_backfill_edit import (
    OUTCOMES,
    BackfillPlan,
    plan_backfill,
    tally_key,
)
from kontext_pipeline.storage.scope import EditScope

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_s3.client import S3Client
    from types_boto3_stepfunctions.client import SFNClient

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class BackfillResult:
    execution_arn: str
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status != "RUNNING"


@dataclass(frozen=True)
class BackfillRuns:
    """Backfill runs of a stack: started on its state machine, read back as the execution's
    status and the counts its children keep on the run's tally item in the jobs table."""

    stepfunctions: SFNClient
    dynamodb: DynamoDBClient
    state_machine_arn: str
    jobs_table: str

    def start(self, document: Mapping[str, Any]) -> str:
        # Not named from the prefix: a second backfill of the same prefix is a new run, and
        # the edits it starts are deduplicated per object version anyway.
        response = self.stepfunctions.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=f"backfill-{uuid.uuid4().hex[:20]}",
            input=json.dumps(document),
        )
        return str(response["executionArn"])

    def result(self, execution_arn: str) -> BackfillResult:
        described = self.stepfunctions.describe_execution(executionArn=execution_arn)
        status = str(described["status"])
        if status == "SUCCEEDED":
            return BackfillResult(execution_arn, status, self.counts(execution_arn))
        error = None
        if status != "RUNNING":
            error = f"{described.get('error', status)}: {described.get('cause', '')}".strip(": ")
        return BackfillResult(execution_arn, status, error=error)

    def counts(self, execution_arn: str) -> dict[str, int]:
        execution_name = execution_arn.rsplit(":", 1)[-1]
        item = self.dynamodb.get_item(
            TableName=self.jobs_table, Key=item_key(tally_key(execution_name)), ConsistentRead=True
        ).get("Item", {})
        return {outcome: int(item.get(outcome, {}).get("N", "0")) for outcome in OUTCOMES}


def backfill_input(
    prefix: str,
    *,
    prompt: str | None = None,
    options: Mapping[str, Any] | None = None,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """The state machine's input; what is left out takes the stack's defaults."""
    document: dict[str, Any] = {"prefix": prefix}
    if prompt is not None or options:
        document["request"] = EditOverrides(prompt=prompt, options=dict(options or {})).model_dump()
    if max_concurrency is not None:
        document["max_concurrency"] = max_concurrency
    return document


def wait_for_backfill(
    runs: BackfillRuns,
    execution_arn: str,
    *,
    timeout: float,
    on_progress: Callable[[BackfillResult, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillResult:
    """Until the backfill ends; raises TimeoutError after `timeout` seconds (it goes on)."""
    started = time.monotonic()
    while True:
        result = runs.result(execution_arn)
        if result.finished:
            return result
        elapsed = time.monotonic() - started
        if on_progress is not None:
            on_progress(result, elapsed)
        if elapsed > timeout:
            raise TimeoutError(f"backfill {execution_arn} still running after {timeout:.0f} s")
        sleep(POLL_SECONDS)


def listed_keys(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def dry_run(
    s3: S3Client,
    *,
    bucket: str,
    prefix: str,
    scope: EditScope,
    request: EditOverrides | None = None,
) -> BackfillPlan:
    """What the backfill would start, and what the model would cost, starting nothing."""
    return plan_backfill(
        listed_keys(s3, bucket, prefix), bucket=bucket, scope=scope, request=request
    )
