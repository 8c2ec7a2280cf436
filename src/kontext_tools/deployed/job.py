"""One job on the deployed stack: its execution, where it stands, its results."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.errors import CaughtError
from kontext_pipeline.core.models import SourceObject

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_stepfunctions.client import SFNClient
    from types_boto3_stepfunctions.type_defs import HistoryEventTypeDef

FAILURE_STATE = "ReportFailure"


@dataclass(frozen=True)
class JobProgress:
    execution_arn: str
    execution_status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    state: str
    model_status: str | None
    queue_position: int | None
    history: list[tuple[str, str]]  # (timestamp, state entered)
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    # What the failure branch was handed: its message (the reason's explanation), the prompt.
    failure_message: str | None = None
    prompt: str | None = None


def find_execution(
    stepfunctions: SFNClient, state_machine_arn: str, source: SourceObject
) -> dict[str, Any] | None:
    """The newest execution for this object (this version, when the version is known).

    A known version names its execution (SourceObject.execution_name, the trigger's and the
    backfill's one rule), so it is described directly: following an upload asks once per
    look, not once per execution in the state machine's history. By key alone, the
    executions are searched, newest first.
    """
    if source.pinned_version:
        return _named_execution(stepfunctions, state_machine_arn, source.execution_name)
    paginator = stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn):
        for summary in page["executions"]:  # newest first
            described = stepfunctions.describe_execution(executionArn=summary["executionArn"])
            started = json.loads(described.get("input", "{}")).get("source", {})
            if started.get("key") != source.key:
                continue
            # An execution started by key alone (no version) still matches a versioned look.
            if source.version_id and started.get("version_id") not in (None, source.version_id):
                continue
            if source.etag and started.get("etag") not in (None, source.etag.strip('"')):
                continue
            return dict(described)
    return None


def _named_execution(
    stepfunctions: SFNClient, state_machine_arn: str, name: str
) -> dict[str, Any] | None:
    arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
    try:
        return dict(stepfunctions.describe_execution(executionArn=arn))
    except stepfunctions.exceptions.ExecutionDoesNotExist:
        return None  # not started yet


def execution_events(stepfunctions: SFNClient, execution_arn: str) -> list[HistoryEventTypeDef]:
    """The execution's history events (the first thousand)."""
    return stepfunctions.get_execution_history(executionArn=execution_arn, maxResults=1000)[
        "events"
    ]


def task_payloads(events: Iterable[HistoryEventTypeDef]) -> Iterator[Any]:
    """What each Lambda task returned (its `Payload`), in the order the tasks succeeded."""
    for event in events:
        output = event.get("taskSucceededEventDetails", {}).get("output")
        if output:
            yield json.loads(output).get("Payload")


def job_progress(stepfunctions: SFNClient, execution: Mapping[str, Any]) -> JobProgress:
    """Where a job stands, from its execution and history."""
    arn = execution["executionArn"]
    described = stepfunctions.describe_execution(executionArn=arn)
    events = execution_events(stepfunctions, arn)
    state: str = described["status"]
    history: list[tuple[str, str]] = []
    failure_message = prompt = None
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered["name"]
            history.append((str(event["timestamp"]), state))
            if state == FAILURE_STATE:
                failure_message, prompt = _failure_of(entered.get("input"))
    model_status, position = _model_status(task_payloads(events))
    output_text = described.get("output")
    return JobProgress(
        execution_arn=arn,
        execution_status=described["status"],
        state=state,
        model_status=model_status,
        queue_position=position,
        history=history,
        output=json.loads(output_text) if output_text else None,
        error=described.get("error"),
        cause=described.get("cause"),
        failure_message=failure_message,
        prompt=prompt,
    )


def _model_status(payloads: Iterable[Any]) -> tuple[Any, Any]:
    """The model's last reported status and queue position (from the status checks)."""
    model_status = position = None
    for payload in payloads:
        if isinstance(payload, dict) and "status" in payload and "request_id" in payload:
            model_status, position = payload.get("status"), payload.get("queue_position")
    return model_status, position


def _failure_of(state_input: str | None) -> tuple[str | None, str | None]:
    """The failure's message and the job's prompt from the failure branch's input."""
    try:
        state = json.loads(state_input or "{}")
    except json.JSONDecodeError:
        return None, None
    if not isinstance(state, dict):
        return None, None
    caught = state.get("error")
    message = CaughtError.from_state(caught).message if isinstance(caught, dict) else None
    prompt = state.get("prompt")
    return message, prompt if isinstance(prompt, str) else None


def download_results(s3: S3Client, manifest_uri: str, out_dir: Path) -> list[Path]:
    """The job's output images and its manifest, into a folder."""
    bucket, manifest_key = manifest_uri.removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    keys = [output["key"] for output in manifest["outputs"]] + [manifest_key]
    for key in keys:
        target = out_dir / key.rsplit("/", 1)[-1]
        target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        written.append(target)
    return written
