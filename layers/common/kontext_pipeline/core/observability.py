"""Powertools Logger and Metrics, shared by every handler.

Service name, metrics namespace and log level come from POWERTOOLS_* variables set in
template.yaml. No Tracer: X-Ray still traces every invocation (`Tracing: Active`) and the
Logger puts its trace id in every line, while the X-Ray SDK stays off the cold-start path
(docs/decisions.md). Log lines carry the object key and the model request id once known.
"""

from __future__ import annotations

import os
import sys

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "kontext-pipeline"

# stderr: CloudWatch takes both streams, and a local run keeps its stdout for the command.
logger = Logger(service=SERVICE, stream=sys.stderr)
metrics = Metrics(
    service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "KontextPipeline")
)
# Every metric is per model, so a second model or provider gets its own lines.
metrics.set_default_dimensions(
    model=os.environ.get("FAL_MODEL_PATH", "fal-ai/flux-pro/kontext/max")
)

__all__ = ["SERVICE", "MetricUnit", "logger", "metrics"]
