"""Start, follow and plan a backfill of a deployed (or local) stack.

The stack's `BackfillStateMachine` does the work (layers/common/kontext_pipeline/
backfill.py); this module starts it with `{"prefix", "request", "max_concurrency"}`,
waits for it, and counts its result: one word per listed object.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kontext_pipeline.backfill import BackfillPlan, count_outcomes, plan_backfill
from kontext_pipeline.models import EditOverrides
from kontext_pipeline.scope import EditScope

if TYPE_CHECKING:
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


def start_backfill(
    stepfunctions: SFNClient, state_machine_arn: str, document: Mapping[str, Any]
) -> str:
    # Not named from the prefix: a second backfill of the same prefix is a new run, and the
    # edits it starts are deduplicated per object version anyway.
    response = stepfunctions.start_execution(
        stateMachineArn=state_machine_arn,
        name=f"backfill-{uuid.uuid4().hex[:20]}",
        input=json.dumps(document),
    )
    return str(response["executionArn"])


def backfill_result(stepfunctions: SFNClient, execution_arn: str) -> BackfillResult:
    described = stepfunctions.describe_execution(executionArn=execution_arn)
    status = str(described["status"])
    if status == "SUCCEEDED":
        output = json.loads(described.get("output") or "{}")
        return BackfillResult(execution_arn, status, count_outcomes(output.get("outcomes", [])))
    error = None
    if status != "RUNNING":
        error = f"{described.get('error', status)}: {described.get('cause', '')}".strip(": ")
    return BackfillResult(execution_arn, status, error=error)


def wait_for_backfill(
    stepfunctions: SFNClient,
    execution_arn: str,
    *,
    timeout: float,
    on_progress: Callable[[BackfillResult, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillResult:
    """Until the backfill ends; raises TimeoutError after `timeout` seconds (it goes on)."""
    started = time.monotonic()
    while True:
        result = backfill_result(stepfunctions, execution_arn)
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
