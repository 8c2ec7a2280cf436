"""State machine failure branch: cancel the model request if it may still run, publish why."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.errors import PipelineError
from kontext_pipeline.core.models import TaskEnvelope
from kontext_pipeline.core.observability import MetricUnit, logger, metrics
from kontext_pipeline.core.protocols import ModelQueue
from kontext_pipeline.core.task_envelope import read_task_envelope
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import report_failure


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[report_failure.ReportFailureSettings],
) -> dict[str, Any]:
    envelope = read_task_envelope(event, TaskEnvelope[dict[str, Any]])
    queue: ModelQueue | None
    try:
        queue = runtime.model_queue()
    except PipelineError as exc:
        # Without the key nothing can be cancelled, but the failure must still be reported.
        logger.warning("no model client for the cancel", extra={"why": str(exc)})
        queue = None
    deps = report_failure.ReportFailureDeps(
        publisher=runtime.notifier(context), queue=queue, s3=runtime.s3, jobs=runtime.jobs
    )
    notification = report_failure.run(envelope, deps)
    reason = notification.failure.reason if notification.failure else "unknown"
    metrics.add_dimension(name="status", value=notification.status)
    metrics.add_metadata(key="reason", value=reason)
    metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
    return {"status": notification.status, "reason": reason}


lambda_handler = lambda_entry(handle, report_failure.ReportFailureSettings)
