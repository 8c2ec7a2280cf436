"""What jobs cost per 1,000 images: the measured Lambda time and transitions, and the
requests each job makes of the other services, at the prices in prices.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks import prices
from kontext_tools.local.pipeline import LocalPipeline

# What one single-image job asks of the other services (see the steps' modules,
# inspection.py, storage/output_copy.py, notifications/publish.py):
# S3 GET = head + header range + manifest probe + the model's fetch of the presigned input;
# S3 PUT = the output + the manifest; DynamoDB writes = submit claim + record, idempotency
# in-progress + completed, the model's recent run time; reads = the claim's check and the
# recent run time at submit and at collect; one SNS publish and one EventBridge event.
S3_GETS_PER_JOB = 4
S3_PUTS_PER_JOB = 2
DYNAMODB_WRITES_PER_JOB = 5
DYNAMODB_READS_PER_JOB = 3


def cost_per_thousand_images(
    pipeline: LocalPipeline, jobs: int, transitions_per_job: float, *, since: int = 0
) -> dict[str, float]:
    """Per 1,000 images, from this run's invocations after `since` (the warm-up's excluded)."""
    invocations = pipeline.lambdas.invocations[since:] if pipeline.lambdas else []
    gb_seconds = sum(
        _billed_seconds(record) * record.memory_mb / 1024 for record in invocations
    ) / max(1, jobs)
    requests = len(invocations) / max(1, jobs)
    per_job = _per_job(transitions_per_job, gb_seconds, requests)
    per_thousand = {name: value * 1000 for name, value in per_job.items()}
    per_thousand["total"] = sum(per_thousand.values())
    per_thousand["lambda_invocations_per_job"] = requests
    per_thousand["lambda_gb_seconds_per_job"] = gb_seconds
    per_thousand["functions"] = per_function(invocations, jobs)  # type: ignore[assignment]
    return per_thousand


def _billed_seconds(record: Any) -> float:
    return max(prices.LAMBDA_MIN_BILLED_SECONDS, record.duration_seconds)


def _per_job(transitions: float, gb_seconds: float, requests: float) -> dict[str, float]:
    return {
        "step_functions": transitions * prices.STEP_FUNCTIONS_PER_TRANSITION,
        "lambda_compute": gb_seconds * prices.LAMBDA_ARM_PER_GB_SECOND,
        "lambda_requests": requests * prices.LAMBDA_PER_REQUEST,
        "s3_requests": S3_GETS_PER_JOB * prices.S3_GET_PER_REQUEST
        + S3_PUTS_PER_JOB * prices.S3_PUT_PER_REQUEST,
        "dynamodb": DYNAMODB_WRITES_PER_JOB * prices.DYNAMODB_PER_WRITE
        + DYNAMODB_READS_PER_JOB * prices.DYNAMODB_PER_READ,
        "sns_and_eventbridge": prices.SNS_PER_PUBLISH + prices.EVENTBRIDGE_PER_EVENT,
    }


def per_function(invocations: Sequence[Any], jobs: int) -> dict[str, dict[str, float]]:
    """Each function's configured memory and measured duration, as Lambda bills them."""
    functions: dict[str, dict[str, float]] = {}
    for record in invocations:
        row = functions.setdefault(
            record.function_name.split("-")[-1],
            {"memory_mb": record.memory_mb, "invocations": 0, "seconds": 0.0},
        )
        row["invocations"] += 1
        row["seconds"] += _billed_seconds(record)
    return {
        name: {
            "memory_mb": row["memory_mb"],
            "invocations_per_job": row["invocations"] / max(1, jobs),
            "mean_duration_s": row["seconds"] / row["invocations"],
            "gb_seconds_per_job": row["seconds"] * row["memory_mb"] / 1024 / max(1, jobs),
        }
        for name, row in sorted(functions.items())
    }
