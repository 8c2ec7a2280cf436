"""State machine task: copy every output into S3, write the manifest, publish success."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.jobs import collect_outputs
from kontext_pipeline.models import ModelJob, TaskEnvelope, utc_now
from kontext_pipeline.observability import MetricUnit, logger, metrics
from kontext_pipeline.runtime import Runtime

RUNTIME = Runtime()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    envelope = TaskEnvelope[ModelJob].model_validate(event)
    logger.append_keys(object_key=envelope.job.source.key, model_request_id=envelope.job.request_id)
    notification = collect_outputs(
        envelope.job,
        s3=RUNTIME.s3,
        http=RUNTIME.http,
        fal=RUNTIME.fal(),
        notifier=RUNTIME.notifier(context),
        settings=RUNTIME.settings,
        policy=RUNTIME.output_policy,
        execution_id=envelope.execution_id,
        budget=RUNTIME.budget,
        run_times=RUNTIME.run_times,
    )
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
