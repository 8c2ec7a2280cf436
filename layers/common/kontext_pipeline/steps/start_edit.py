"""StartEdit: an S3 event's objects -> one state machine execution per object version.

The trigger and the backfill (steps/start_backfill_edit.py) both start jobs through
`JobStarter`, so they share the naming rule (`SourceObject.execution_name`) and the
recursion guard (storage/scope.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from kontext_pipeline.core.config import ModelSettings, ScopeSettings, TriggerSettings
from kontext_pipeline.core.errors import aws_error_code
from kontext_pipeline.core.models import EditOverrides, JobStart, SourceObject, utc_now
from kontext_pipeline.core.observability import logger
from kontext_pipeline.storage.scope import EditScope

if TYPE_CHECKING:
    from types_boto3_stepfunctions.client import SFNClient


@dataclass(frozen=True)
class StartOutcome:
    source: SourceObject
    outcome: str  # started | duplicate | skipped
    detail: str


@dataclass(frozen=True)
class JobStarter:
    stepfunctions: SFNClient
    state_machine_arn: str

    def start(self, source: SourceObject, request: EditOverrides | None = None) -> StartOutcome:
        """Start the one execution of this object version, or count it as a duplicate."""
        name = source.execution_name
        # received_at differs between deliveries, so a replay fails with ExecutionAlreadyExists
        # (same name, other input) and is counted as a duplicate, rather than being silently
        # answered with the running execution as an identical input would be.
        start = JobStart(source=source, received_at=utc_now(), request=request)
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=start.model_dump_json()
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ExecutionAlreadyExists":
                logger.info("duplicate event: job already exists", extra={"execution_name": name})
                return StartOutcome(source, "duplicate", name)
            raise
        logger.info("job started", extra={"execution_arn": response["executionArn"]})
        return StartOutcome(source, "started", response["executionArn"])


def source_from_s3_record(record: Mapping[str, Any]) -> SourceObject:
    """An S3 event record's object; event keys are URL-encoded with `+` for spaces."""
    s3 = record["s3"]
    obj = s3["object"]
    return SourceObject(
        bucket=s3["bucket"]["name"],
        key=unquote_plus(obj["key"]),
        version_id=obj.get("versionId"),
        sequencer=obj.get("sequencer"),
        size=obj.get("size"),
        etag=obj.get("eTag"),
    )


class StartEditSettings(ModelSettings, ScopeSettings, TriggerSettings):
    """What functions/start_edit reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class StartEditDeps:
    starter: JobStarter
    scope: EditScope


def run(records: Iterable[Mapping[str, Any]], deps: StartEditDeps) -> list[StartOutcome]:
    """One outcome per ObjectCreated record: started, duplicate or skipped (and why)."""
    outcomes = []
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        source = source_from_s3_record(record)
        reason = deps.scope.skip_reason(source)
        if reason:
            logger.info("skipping object", extra={"object_key": source.key, "why": reason})
            outcomes.append(StartOutcome(source, "skipped", reason))
            continue
        outcomes.append(deps.starter.start(source))
    return outcomes
