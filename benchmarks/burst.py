"""Many uploads at once against the model's concurrency limit: every one a job, an output
and a notification, no duplicates, nothing cancelled; and what waiting in its queue costs.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.costs import cost_per_thousand_images
from benchmarks.job_runs import TEMPLATE_DEFAULTS, JobFigures, run_jobs
from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline

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


@dataclass
class BurstSeen:
    """What the stack and the model show after the burst (the warm-up's job left out)."""

    figures: list[JobFigures]
    wall: float
    executions: int
    waiting: list[int]
    outputs: int
    notified: list[str]
    requests: list[Any]
    transitions: float
    cost: dict[str, Any]


def burst(quick: bool) -> dict[str, Any]:
    """Many uploads at once against a concurrency limit: every one a job, an output and a
    notification, no duplicates, nothing cancelled; what waiting in the queue costs."""
    count = 60 if quick else 500
    timing = EmulatorTiming(
        queue_seconds=0.0, run_seconds=BURST_MODEL_SECONDS, concurrency=BURST_CONCURRENCY
    )
    with LocalPipeline(
        emulator_timing=timing, parameters=dict(TEMPLATE_DEFAULTS), max_sandboxes=BURST_SANDBOXES
    ) as pipeline:
        # One job first: the functions are warm and the model's recent run time is known,
        # as it is for any deployment that has run before.
        run_jobs(pipeline, 1, "burst-warm-up", timeout=120)
        before = len(pipeline.lambdas.invocations) if pipeline.lambdas else 0
        started = time.time()
        figures = run_jobs(pipeline, count, "burst", timeout=900)
        seen = burst_seen(pipeline, figures, wall=time.time() - started, since=before)
    result = burst_result(count, seen)
    print_burst(result)
    return result


def burst_seen(
    pipeline: LocalPipeline, figures: list[JobFigures], *, wall: float, since: int
) -> BurstSeen:
    executions = _burst_executions(pipeline)
    requests = [r for r in pipeline.emulator.requests() if "#" in str(r.body.get("prompt"))]
    ok = [item for item in figures if item.status == "SUCCEEDED"]
    transitions = statistics.mean(item.transitions for item in ok) if ok else 0.0
    return BurstSeen(
        figures=figures,
        wall=wall,
        executions=len(executions),
        waiting=[queued_transitions(pipeline.history(e["executionArn"])) for e in executions],
        outputs=_burst_outputs(pipeline),
        notified=_burst_notified(pipeline),
        requests=requests[1:],  # the warm-up's
        transitions=transitions,
        cost=cost_per_thousand_images(pipeline, len(figures), transitions, since=since),
    )


def _burst_executions(pipeline: LocalPipeline) -> list[dict[str, Any]]:
    return [item for item in pipeline.executions() if "warm-up" not in item["name"]]


def _burst_notified(pipeline: LocalPipeline) -> list[str]:
    keys = [item.notification.source.key for item in pipeline.notifications()]
    return [key for key in keys if "/burst-" in key and "warm-up" not in key]


def _burst_outputs(pipeline: LocalPipeline) -> int:
    pages = pipeline.clients.s3.get_paginator("list_objects_v2").paginate(
        Bucket=pipeline.bucket, Prefix="outputs/bench/burst-"
    )
    return sum(
        1
        for page in pages
        for item in page.get("Contents", [])
        if not item["Key"].endswith("manifest.json") and "warm-up" not in item["Key"]
    )


def burst_result(count: int, seen: BurstSeen) -> dict[str, Any]:
    submits = [request.submitted_at for request in seen.requests]
    return {
        "uploads": count,
        "concurrency": BURST_CONCURRENCY,
        "model_seconds": BURST_MODEL_SECONDS,
        "executions": seen.executions,
        "outputs": seen.outputs,
        "notifications": len(seen.notified),
        "duplicates": len(seen.notified) - len(set(seen.notified)),
        "model_submits": len(submits),
        "cancelled": _cancelled(seen.requests),
        "succeeded": sum(1 for item in seen.figures if item.status == "SUCCEEDED"),
        "failures": sorted({item.status for item in seen.figures} - {"SUCCEEDED"}),
        "wall_seconds": seen.wall,
        "model_drain_seconds": burst_drain_seconds(count, BURST_CONCURRENCY, BURST_MODEL_SECONDS),
        "longest_queue_wait_s": _longest_queue_wait(seen.requests),
        "submit_rate_per_s": _submit_rate(submits),
        "transitions_per_job": seen.transitions,
        "queued_transitions_per_job_mean": statistics.mean(seen.waiting) if seen.waiting else 0.0,
        "queued_transitions_per_job_max": max(seen.waiting, default=0),
        "cost_per_1000_images_usd": seen.cost["total"],
        "cost_breakdown_per_1000": seen.cost,
    }


def _cancelled(requests: list[Any]) -> int:
    return sum(1 for request in requests if request.cancelled or request.cancel_requested)


def _longest_queue_wait(requests: list[Any]) -> float:
    waits = [(r.started_at or r.submitted_at) - r.submitted_at for r in requests]
    return max(waits, default=0.0)


def _submit_rate(submits: list[float]) -> float:
    span = (max(submits) - min(submits)) if len(submits) > 1 else 0.0
    return len(submits) / span if span else float("nan")


def print_burst(result: dict[str, Any]) -> None:
    print(
        f"  {result['uploads']} uploads at concurrency {BURST_CONCURRENCY} "
        f"({BURST_MODEL_SECONDS} s runs): {result['executions']} executions, "
        f"{result['outputs']} outputs, {result['notifications']} notifications, "
        f"{result['duplicates']} duplicates, {result['model_submits']} submits, "
        f"{result['succeeded']} succeeded, {result['cancelled']} cancelled; "
        f"{result['wall_seconds']:.1f} s wall (the model alone: "
        f"{result['model_drain_seconds']:.0f} s; longest queue wait "
        f"{result['longest_queue_wait_s']:.0f} s); transitions/job "
        f"{result['transitions_per_job']:.1f}, while queued mean "
        f"{result['queued_transitions_per_job_mean']:.1f} "
        f"max {result['queued_transitions_per_job_max']}; "
        f"${result['cost_per_1000_images_usd']:.3f} per 1,000",
        flush=True,
    )
