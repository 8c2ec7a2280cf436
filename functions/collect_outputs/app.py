"""State machine task: copy every output into S3, write the manifest, publish success."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.core.models import ModelJob, TaskEnvelope, utc_now
from kontext_pipeline.core.observability import MetricUnit, metrics
from kontext_pipeline.core.task_envelope import read_task_envelope
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps import collect_outputs


def deps_of(
    runtime: Runtime[collect_outputs.CollectOutputsSettings], context: LambdaContext | None = None
) -> collect_outputs.CollectOutputsDeps:
    return collect_outputs.CollectOutputsDeps(
        s3=runtime.s3,
        http=runtime.http,
        queue=runtime.model_queue(),
        publisher=runtime.notifier(context),
        scope=runtime.edit_scope,
        policy=runtime.output_policy,
        jobs=runtime.jobs,
    )


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    runtime: Runtime[collect_outputs.CollectOutputsSettings],
) -> dict[str, Any]:
    envelope = read_task_envelope(event, TaskEnvelope[ModelJob])
    notification = collect_outputs.run(envelope, deps_of(runtime, context))
    metrics.add_dimension(name="status", value=notification.status)
    metrics.add_metric(name="JobsSucceeded", unit=MetricUnit.Count, value=1)
    model_seconds = float(notification.timings.get("inference") or 0.0)
    metrics.add_metric(name="ModelSeconds", unit=MetricUnit.Seconds, value=model_seconds)
    # From submit to outputs stored, less the model's own run (so it includes queue time).
    job_seconds = (utc_now() - envelope.job.submitted_at).total_seconds()
    metrics.add_metric(
        name="PipelineOverheadSeconds",
        unit=MetricUnit.Seconds,
        value=max(0.0, job_seconds - model_seconds),
    )
    metrics.add_metric(name="OutputsCopied", unit=MetricUnit.Count, value=len(notification.outputs))
    return {
        "status": notification.status,
        "manifest_uri": notification.manifest_uri,
        "outputs": [output.s3_uri for output in notification.outputs],
    }


lambda_handler = lambda_entry(handle, collect_outputs.CollectOutputsSettings, deps=deps_of)
