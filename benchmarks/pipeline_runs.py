"""Whole-pipeline benchmarks on moto + the emulator: overhead, transitions, cost, burst.

Overhead is what the pipeline adds to the model: (notification received - upload) minus
the time the emulator held the request (queue + run, from its own clock). Transitions are
the `*StateEntered` events of each execution's history, which is what Step Functions
Standard bills. Nothing here is asserted; every figure is printed and saved.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import prices
from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

# What one single-image job asks of the other services (see jobs.py, storage.py, notify.py):
# S3 GET = head + header range + manifest probe + the model's fetch of the presigned input;
# S3 PUT = the output + the manifest; DynamoDB = submit claim + record, idempotency
# in-progress + completed; one SNS publish and one EventBridge event.
# Overhead jobs arrive as a steady stream (2 uploads/s), so each job's latency is measured
# under load but not behind 19 others finishing on the same 2 cores in the same instant;
# the burst benchmark measures that case.
ARRIVAL_SPACING_SECONDS = 0.5
# Model run times vary around the nominal time, as a real model's do: polling has to find
# the end of a run it cannot predict exactly, a webhook is told. A diffusion model runs a
# fixed number of steps, so ±10% is the usual case; ±30% (a busy or cold GPU) is measured
# too, to show what it does to each mode.
USUAL_SPREAD = 0.1
WIDE_SPREAD = 0.3

S3_GETS_PER_JOB = 4
S3_PUTS_PER_JOB = 2
DYNAMODB_WRITES_PER_JOB = 4
DYNAMODB_READS_PER_JOB = 1


@dataclass(frozen=True)
class Mode:
    name: str
    parameters: dict[str, str]
    spread: float = USUAL_SPREAD


def adaptive(model_seconds: float, spread: float = USUAL_SPREAD) -> Mode:
    return Mode(
        "poll, adaptive",
        {"ExpectedModelSeconds": str(model_seconds), "PollMinSeconds": "2", "PollMaxSeconds": "30"},
        spread,
    )


def fixed_two_seconds() -> Mode:
    # The common pattern: poll every 2 s whatever the model is doing.
    return Mode(
        "poll, fixed 2 s",
        {"ExpectedModelSeconds": "2", "PollMinSeconds": "2", "PollMaxSeconds": "2"},
    )


def webhook(model_seconds: float, spread: float = USUAL_SPREAD) -> Mode:
    return Mode(
        "webhook",
        {
            "CompletionMode": "webhook",
            "WebhookWaitSeconds": str(int(model_seconds) + 60),
            "ExpectedModelSeconds": str(model_seconds),
            "PollMinSeconds": "2",
            "PollMaxSeconds": "30",
        },
        spread,
    )


def modes(model_seconds: float, quick: bool) -> list[Mode]:
    usual = [adaptive(model_seconds), fixed_two_seconds(), webhook(model_seconds)]
    if quick:
        return usual
    return [*usual, adaptive(model_seconds, WIDE_SPREAD), webhook(model_seconds, WIDE_SPREAD)]


@dataclass
class JobFigures:
    overhead_seconds: float
    model_seconds: float
    end_to_end_seconds: float
    transitions: int
    status: str


def run_jobs(
    pipeline: LocalPipeline, count: int, tag: str, *, timeout: float, spacing: float = 0.0
) -> list[JobFigures]:
    """Upload `count` images, one every `spacing` seconds (0: all at once), and follow
    them to their notifications."""
    image = make_image(size=(256, 192))
    keys = [f"inputs/bench/{tag}-{index}.png" for index in range(count)]
    started = time.time()
    uploaded: dict[str, float] = {}
    received: dict[str, tuple[float, Any]] = {}
    deadline = started + count * spacing + timeout
    while len(received) < count and time.time() < deadline:
        while len(uploaded) < count and time.time() >= started + len(uploaded) * spacing:
            key = keys[len(uploaded)]
            uploaded[key] = time.time()
            pipeline.upload(image, key=key, prompt=f"make it blue #{len(uploaded)}")
        for item in pipeline.notifications():
            key = item.notification.source.key
            if key in uploaded and key not in received:
                received[key] = (time.time(), item.notification)
        time.sleep(0.02)
    figures = []
    for key, (notified_at, notification) in received.items():
        end_to_end = notified_at - uploaded[key]
        if notification.request_id is None:  # failed before the model saw it
            reason = notification.failure.reason if notification.failure else "unknown"
            figures.append(JobFigures(end_to_end, 0.0, end_to_end, 0, f"FAILED {reason}"))
            continue
        request = pipeline.emulator.get(notification.request_id)
        held = (request.completed_at or notified_at) - request.submitted_at
        execution = pipeline.execution_for(notification.source)
        transitions = (
            sum(
                1
                for event in pipeline.history(execution["executionArn"])
                if event["type"].endswith("StateEntered")
            )
            if execution
            else 0
        )
        status = notification.status
        if notification.failure:
            status += f" {notification.failure.reason}"
        figures.append(JobFigures(end_to_end - held, held, end_to_end, transitions, status))
    return figures


def cost_per_thousand_images(
    pipeline: LocalPipeline, jobs: int, transitions_per_job: float, *, since: int = 0
) -> dict[str, float]:
    """Per 1,000 images, from this run's invocations after `since` (the warm-up's excluded)."""
    invocations = pipeline.lambdas.invocations[since:] if pipeline.lambdas else []
    gb_seconds = sum(
        max(prices.LAMBDA_MIN_BILLED_SECONDS, record.duration_seconds) * record.memory_mb / 1024
        for record in invocations
    ) / max(1, jobs)
    requests = len(invocations) / max(1, jobs)
    per_job = {
        "step_functions": transitions_per_job * prices.STEP_FUNCTIONS_PER_TRANSITION,
        "lambda_compute": gb_seconds * prices.LAMBDA_ARM_PER_GB_SECOND,
        "lambda_requests": requests * prices.LAMBDA_PER_REQUEST,
        "s3_requests": S3_GETS_PER_JOB * prices.S3_GET_PER_REQUEST
        + S3_PUTS_PER_JOB * prices.S3_PUT_PER_REQUEST,
        "dynamodb": DYNAMODB_WRITES_PER_JOB * prices.DYNAMODB_PER_WRITE
        + DYNAMODB_READS_PER_JOB * prices.DYNAMODB_PER_READ,
        "sns_and_eventbridge": prices.SNS_PER_PUBLISH + prices.EVENTBRIDGE_PER_EVENT,
    }
    per_thousand = {name: value * 1000 for name, value in per_job.items()}
    per_thousand["total"] = sum(per_thousand.values())
    per_thousand["lambda_invocations_per_job"] = requests
    per_thousand["lambda_gb_seconds_per_job"] = gb_seconds
    return per_thousand


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def overhead(quick: bool) -> dict[str, Any]:
    """Overhead and transitions per mode, for 5 s and 30 s models; cost per 1,000 images."""
    jobs = 5 if quick else 20
    model_times = [5.0] if quick else [5.0, 30.0]
    rows = []
    for model_seconds in model_times:
        for mode in modes(model_seconds, quick):
            timing = EmulatorTiming(
                queue_seconds=0.0, run_seconds=model_seconds, run_spread=mode.spread
            )
            with LocalPipeline(emulator_timing=timing, parameters=mode.parameters) as pipeline:
                # One job first, so the functions are warm (cold starts are measured apart).
                run_jobs(pipeline, 1, "warm-up", timeout=model_seconds * 3 + 120)
                before = len(pipeline.lambdas.invocations) if pipeline.lambdas else 0
                figures = run_jobs(
                    pipeline,
                    jobs,
                    f"{mode.name[:4]}-{int(model_seconds)}-{mode.spread}",
                    timeout=model_seconds * 3 + 120,
                    spacing=ARRIVAL_SPACING_SECONDS,
                )
                ok = [item for item in figures if item.status == "SUCCEEDED"]
                overheads = [item.overhead_seconds for item in ok]
                transitions = statistics.mean(item.transitions for item in ok) if ok else 0.0
                cost = cost_per_thousand_images(pipeline, len(figures), transitions, since=before)
            rows.append(
                {
                    "mode": mode.name,
                    "model_seconds": model_seconds,
                    "model_time_spread": mode.spread,
                    "jobs": jobs,
                    "succeeded": len(ok),
                    "overhead_median_s": statistics.median(overheads) if overheads else None,
                    "overhead_p95_s": percentile(overheads, 0.95),
                    "transitions_per_job": transitions,
                    "cost_per_1000_images_usd": cost["total"],
                    "cost_breakdown_per_1000": cost,
                }
            )
            print(
                f"  {mode.name:16} {model_seconds:3.0f} s ±{mode.spread:.0%}: overhead median "
                f"{rows[-1]['overhead_median_s']:.2f} s, p95 {rows[-1]['overhead_p95_s']:.2f} s,"
                f" {transitions:.1f} transitions, ${cost['total']:.3f} per 1,000 images",
                flush=True,
            )
    return {"arrival_spacing_s": ARRIVAL_SPACING_SECONDS, "rows": rows}


def burst(quick: bool) -> dict[str, Any]:
    """Many uploads at once: every one a job, an output and a notification, no duplicates."""
    count = 50 if quick else 300
    timing = EmulatorTiming(queue_seconds=0.0, run_seconds=1.0)
    parameters = {"ExpectedModelSeconds": "1", "PollMinSeconds": "1", "PollMaxSeconds": "5"}
    started = time.time()
    with LocalPipeline(emulator_timing=timing, parameters=parameters) as pipeline:
        figures = run_jobs(pipeline, count, "burst", timeout=600)
        wall = time.time() - started
        executions = 0
        sfn = pipeline.client("stepfunctions")
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=pipeline.outputs["StateMachineArn"]
        ):
            executions += len(page["executions"])
        outputs = 0
        for page in (
            pipeline.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=pipeline.bucket, Prefix="outputs/bench/")
        ):
            outputs += sum(
                1 for item in page.get("Contents", []) if not item["Key"].endswith("manifest.json")
            )
        notes = [item.notification.source.key for item in pipeline.notifications()]
        submits = [request.submitted_at for request in pipeline.emulator.requests()]
    span = (max(submits) - min(submits)) if len(submits) > 1 else 0.0
    result = {
        "uploads": count,
        "executions": executions,
        "outputs": outputs,
        "notifications": len(notes),
        "duplicates": len(notes) - len(set(notes)),
        "model_submits": len(submits),
        "succeeded": sum(1 for item in figures if item.status == "SUCCEEDED"),
        "failures": sorted({item.status for item in figures if item.status != "SUCCEEDED"}),
        "wall_seconds": wall,
        "submit_rate_per_s": len(submits) / span if span else float("nan"),
    }
    print(
        f"  {count} uploads: {executions} executions, {outputs} outputs, {len(notes)} "
        f"notifications, {result['duplicates']} duplicates, {len(submits)} submits, "
        f"{wall:.1f} s wall, {result['submit_rate_per_s']:.1f} submits/s",
        flush=True,
    )
    return result
