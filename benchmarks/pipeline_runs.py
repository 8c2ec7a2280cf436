"""Whole-pipeline benchmarks on moto + the emulator: overhead, transitions, cost, burst.

Overhead is what the pipeline adds to the model: (notification received - upload) minus
the time the emulator held the request (queue + run, from its own clock). Transitions are
the `*StateEntered` events of each execution's history, which is what Step Functions
Standard bills. Nothing here is asserted; every figure is printed and saved.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import prices
from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

# What one single-image job asks of the other services (see jobs.py, inspection.py, outputs.py, notify.py):
# S3 GET = head + header range + manifest probe + the model's fetch of the presigned input;
# S3 PUT = the output + the manifest; DynamoDB writes = submit claim + record, idempotency
# in-progress + completed, the model's recent run time; reads = the claim's check and the
# recent run time at submit and at collect; one SNS publish and one EventBridge event.
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
DYNAMODB_WRITES_PER_JOB = 5
DYNAMODB_READS_PER_JOB = 3
# The template's own defaults: the plan learns the model's run time from the jobs it runs,
# nothing here is tuned to the emulated model, whose times (5 s, 30 s) differ from the
# 20 s guess.
TEMPLATE_DEFAULTS = {"ExpectedModelSeconds": "20", "PollMinSeconds": "2", "PollMaxSeconds": "30"}


@dataclass(frozen=True)
class Mode:
    name: str
    parameters: dict[str, str]
    spread: float = USUAL_SPREAD
    environment: dict[str, str] | None = None


def adaptive(model_seconds: float, spread: float = USUAL_SPREAD) -> Mode:
    return Mode("poll, adaptive", dict(TEMPLATE_DEFAULTS), spread)


def fixed_two_seconds() -> Mode:
    # The common pattern: a Wait loop that asks every 2 s whatever the model is doing
    # (no asking inside CheckStatus).
    return Mode(
        "poll, fixed 2 s",
        {**TEMPLATE_DEFAULTS, "PollMaxSeconds": "2"},
        environment={"POLL_INLINE_SECONDS": "0"},
    )


def webhook(model_seconds: float, spread: float = USUAL_SPREAD) -> Mode:
    return Mode(
        "webhook",
        {
            **TEMPLATE_DEFAULTS,
            "CompletionMode": "webhook",
            "WebhookWaitSeconds": str(int(model_seconds) + 60),
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
    # Each function's configured memory and measured duration, as Lambda bills them.
    functions: dict[str, dict[str, float]] = {}
    for record in invocations:
        row = functions.setdefault(
            record.function_name.split("-")[-1],
            {"memory_mb": record.memory_mb, "invocations": 0, "seconds": 0.0},
        )
        row["invocations"] += 1
        row["seconds"] += max(prices.LAMBDA_MIN_BILLED_SECONDS, record.duration_seconds)
    per_function = {
        name: {
            "memory_mb": row["memory_mb"],
            "invocations_per_job": row["invocations"] / max(1, jobs),
            "mean_duration_s": row["seconds"] / row["invocations"],
            "gb_seconds_per_job": row["seconds"] * row["memory_mb"] / 1024 / max(1, jobs),
        }
        for name, row in sorted(functions.items())
    }
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
    per_thousand["functions"] = per_function  # type: ignore[assignment]
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
            with LocalPipeline(
                emulator_timing=timing, parameters=mode.parameters, environment=mode.environment
            ) as pipeline:
                # One job first, so the functions are warm (cold starts are measured apart)
                # and the model's recent run time is known, as after any deployment's first job.
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


# The burst runs against fal's per-key concurrency: the emulator runs 2 requests at once
# (a new account's limit) and queues the rest. Its model time is short so 500 images
# drain in minutes on 2 cores; what it shows scales (see `burst_drain_seconds`).
BURST_CONCURRENCY = 2
BURST_MODEL_SECONDS = 1.0
# The CheckStatus sandboxes the local run may keep at once (Lambda's own limit is 1,000):
# near the front of the queue several jobs ask inline at the same time.
BURST_SANDBOXES = 12


def burst_drain_seconds(images: int, concurrency: int, run_seconds: float) -> float:
    """How long fal takes to run a burst: the images share `concurrency` runners."""
    return images / concurrency * run_seconds


def queued_transitions(history: list[dict[str, Any]]) -> int:
    """Transitions spent while the request waited in the queue: each look that found it
    IN_QUEUE cost its Wait, CheckStatus and Choice."""
    looks = 0
    for event in history:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") != "CheckStatus":
            continue
        try:
            output = json.loads(details.get("output") or "{}")
        except json.JSONDecodeError:
            continue
        looks += output.get("status") == "IN_QUEUE"
    return 3 * looks


def burst(quick: bool) -> dict[str, Any]:
    """Many uploads at once against a concurrency limit: every one a job, an output and a
    notification, no duplicates, nothing cancelled; what waiting in the queue costs."""
    count = 60 if quick else 500
    timing = EmulatorTiming(
        queue_seconds=0.0, run_seconds=BURST_MODEL_SECONDS, concurrency=BURST_CONCURRENCY
    )
    # The template's defaults: ExpectedModelSeconds 20, PollMinSeconds 2, PollMaxSeconds 30.
    parameters = {"ExpectedModelSeconds": "20", "PollMinSeconds": "2", "PollMaxSeconds": "30"}
    with LocalPipeline(
        emulator_timing=timing, parameters=parameters, max_sandboxes=BURST_SANDBOXES
    ) as pipeline:
        # One job first: the functions are warm and the model's recent run time is known,
        # as it is for any deployment that has run before.
        run_jobs(pipeline, 1, "burst-warm-up", timeout=120)
        before = len(pipeline.lambdas.invocations) if pipeline.lambdas else 0
        started = time.time()
        figures = run_jobs(pipeline, count, "burst", timeout=900)
        wall = time.time() - started
        sfn = pipeline.client("stepfunctions")
        executions = [
            execution
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=pipeline.outputs["StateMachineArn"]
            )
            for execution in page["executions"]
            if "warm-up" not in execution["name"]
        ]
        waiting = [queued_transitions(pipeline.history(e["executionArn"])) for e in executions]
        outputs = 0
        for page in (
            pipeline.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=pipeline.bucket, Prefix="outputs/bench/burst-")
        ):
            outputs += sum(
                1
                for item in page.get("Contents", [])
                if not item["Key"].endswith("manifest.json") and "warm-up" not in item["Key"]
            )
        notes = [
            item.notification.source.key
            for item in pipeline.notifications()
            if "/burst-" in item.notification.source.key
            and "warm-up" not in item.notification.source.key
        ]
        requests = [r for r in pipeline.emulator.requests() if "#" in str(r.body.get("prompt"))]
        requests = requests[1:]  # the warm-up's
        ok = [item for item in figures if item.status == "SUCCEEDED"]
        transitions = statistics.mean(item.transitions for item in ok) if ok else 0.0
        cost = cost_per_thousand_images(pipeline, len(figures), transitions, since=before)
    submits = [request.submitted_at for request in requests]
    waits = [
        (request.started_at or request.submitted_at) - request.submitted_at for request in requests
    ]
    span = (max(submits) - min(submits)) if len(submits) > 1 else 0.0
    drain = burst_drain_seconds(count, BURST_CONCURRENCY, BURST_MODEL_SECONDS)
    result = {
        "uploads": count,
        "concurrency": BURST_CONCURRENCY,
        "model_seconds": BURST_MODEL_SECONDS,
        "executions": len(executions),
        "outputs": outputs,
        "notifications": len(notes),
        "duplicates": len(notes) - len(set(notes)),
        "model_submits": len(submits),
        "cancelled": sum(1 for r in requests if r.cancelled or r.cancel_requested),
        "succeeded": len(ok),
        "failures": sorted({item.status for item in figures if item.status != "SUCCEEDED"}),
        "wall_seconds": wall,
        "model_drain_seconds": drain,
        "longest_queue_wait_s": max(waits, default=0.0),
        "submit_rate_per_s": len(submits) / span if span else float("nan"),
        "transitions_per_job": transitions,
        "queued_transitions_per_job_mean": statistics.mean(waiting) if waiting else 0.0,
        "queued_transitions_per_job_max": max(waiting, default=0),
        "cost_per_1000_images_usd": cost["total"],
        "cost_breakdown_per_1000": cost,
    }
    print(
        f"  {count} uploads at concurrency {BURST_CONCURRENCY} ({BURST_MODEL_SECONDS} s runs): "
        f"{len(executions)} executions, {outputs} outputs, {len(notes)} notifications, "
        f"{result['duplicates']} duplicates, {len(submits)} submits, {len(ok)} succeeded, "
        f"{result['cancelled']} cancelled; {wall:.1f} s wall (the model alone: {drain:.0f} s; "
        f"longest queue wait {result['longest_queue_wait_s']:.0f} s); transitions/job "
        f"{transitions:.1f}, while queued mean {result['queued_transitions_per_job_mean']:.1f} "
        f"max {result['queued_transitions_per_job_max']}; ${cost['total']:.3f} per 1,000",
        flush=True,
    )
    return result
