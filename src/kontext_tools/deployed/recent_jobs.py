"""Recent jobs on the deployed stack: what each did, how long it took, what it cost."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.models import MODEL_PRICE_PER_IMAGE_USD

from kontext_tools.deployed.job import execution_events, task_payloads

if TYPE_CHECKING:
    from types_boto3_stepfunctions.client import SFNClient
    from types_boto3_stepfunctions.type_defs import DescribeExecutionOutputTypeDef

# Rough per-job cost: the model's price per output image (models.py) and Step Functions
# Standard's price per state transition; Lambda, S3 and SNS add fractions of a cent per
# thousand jobs (see benchmarks/prices.py and the README's Performance).
STEP_FUNCTIONS_PER_TRANSITION_USD = 0.025 / 1000
EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass(frozen=True)
class JobSummary:
    key: str
    status: str
    reason: str | None
    request_id: str | None
    started_at: datetime
    seconds: float | None
    transitions: int
    images: int
    execution_arn: str

    @property
    def cost_usd(self) -> float:
        return (
            self.images * MODEL_PRICE_PER_IMAGE_USD
            + self.transitions * STEP_FUNCTIONS_PER_TRANSITION_USD
        )

    def document(self) -> dict[str, Any]:
        """As `jobs --json` prints it: times as text, the cost, the execution's ARN last."""
        document = asdict(self)
        execution = document.pop("execution_arn")
        return document | {
            "started_at": self.started_at.isoformat(),
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "cost_usd": round(self.cost_usd, 4),
            "execution": execution,
        }


def list_jobs(
    stepfunctions: SFNClient,
    state_machine_arn: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[JobSummary]:
    """The newest jobs first: at most `limit`, started at or after `since`."""
    filters: dict[str, Any] = {"statusFilter": status} if status else {}
    jobs: list[JobSummary] = []
    paginator = stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, **filters):
        for summary in page["executions"]:  # newest first
            started = _aware(summary["startDate"])
            if since is not None and started < since:
                return jobs
            jobs.append(_summarise(stepfunctions, summary, started))
            if len(jobs) >= limit:
                return jobs
    return jobs


def _summarise(
    stepfunctions: SFNClient, summary: Mapping[str, Any], started: datetime
) -> JobSummary:
    arn = summary["executionArn"]
    described = stepfunctions.describe_execution(executionArn=arn)
    source = json.loads(described.get("input") or "{}").get("source", {})
    events = execution_events(stepfunctions, arn)
    stopped = described.get("stopDate")
    return JobSummary(
        key=str(source.get("key", "?")),
        status=str(described["status"]),
        reason=described.get("cause") if described["status"] != "SUCCEEDED" else None,
        request_id=_last_request_id(task_payloads(events)),
        started_at=started,
        seconds=(_aware(stopped) - started).total_seconds() if stopped else None,
        transitions=sum(1 for event in events if "stateEnteredEventDetails" in event),
        images=_images_of(described),
        execution_arn=arn,
    )


def _last_request_id(payloads: Iterable[Any]) -> str | None:
    """The model request id the job's tasks reported last."""
    request_id = None
    for payload in payloads:
        if isinstance(payload, dict) and payload.get("request_id"):
            request_id = str(payload["request_id"])
    return request_id


def _images_of(described: DescribeExecutionOutputTypeDef) -> int:
    output = json.loads(described.get("output") or "null")
    return len(output.get("outputs", [])) if isinstance(output, dict) else 0


def _aware(moment: Any) -> datetime:
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    assert isinstance(when, datetime)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
