"""Bursts against fal's per-key concurrency, through the real state machine (issue 16).

fal runs a few requests per key at once and queues the rest. A burst larger than that
must drain with every image edited and nothing cancelled, although its tail waits in the
queue far longer than any one run may take; a request that really stops moving must still
fail clearly and be cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import local_run, make_image

CONCURRENCY = 2
RUN_SECONDS = 2.0
BURST = 12
# The run limit is well above one run (2 s) but well below what the burst's tail waits
# in the queue (12 runs / 2 runners x 2 s = 12 s): counted from submit, it would cancel it.
LIMITS = {"DeadlineSeconds": "5", "QueueWaitSeconds": "120"}


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    timing = EmulatorTiming(queue_seconds=0.1, run_seconds=RUN_SECONDS, concurrency=CONCURRENCY)
    with LocalPipeline(emulator_timing=timing, parameters=LIMITS) as running:
        yield running


def test_a_burst_larger_than_the_concurrency_drains_with_nothing_cancelled(
    pipeline: LocalPipeline,
) -> None:
    # Given a model that runs 2 requests at once, and 12 uploads at once
    image = make_image(size=(96, 64))
    sources = [
        pipeline.upload(image, key=f"inputs/burst/{index}.png", prompt=f"make it blue {index}")
        for index in range(BURST)
    ]
    # When every job is followed to its notification
    received = [pipeline.wait_for_notification(source, timeout=180) for source in sources]
    # Then every image is edited, each submitted once, and nothing was cancelled
    failures = [
        (item.notification.source.key, item.notification.failure)
        for item in received
        if item.notification.status != "SUCCEEDED"
    ]
    assert failures == []
    requests = pipeline.emulator.requests()
    assert len(requests) == BURST
    assert not any(request.cancelled or request.cancel_requested for request in requests)
    # And the burst really queued past the run limit: its tail waited longer than 5 s
    waits = [(request.started_at or 0) - request.submitted_at for request in requests]
    assert max(waits) > float(LIMITS["DeadlineSeconds"])


def test_a_request_that_stops_moving_in_the_queue_fails_and_is_cancelled() -> None:
    # Given a short queue-wait limit and a request the queue never starts
    timing = EmulatorTiming(queue_seconds=0.1, run_seconds=0.3, concurrency=CONCURRENCY)
    parameters = {"DeadlineSeconds": "30", "QueueWaitSeconds": "5"}
    with LocalPipeline(emulator_timing=timing, parameters=parameters) as pipeline:
        source = pipeline.upload(
            make_image(size=(96, 64)),
            key="inputs/burst/stuck.png",
            prompt="make it red [fault:stuck-in-queue]",
        )
        # When the limit passes
        notification = pipeline.wait_for_notification(source, timeout=90).notification
        # Then the job fails as queue_wait_exceeded, naming the limit, and the request is
        # cancelled at the model (a queued request is removed, so it is not billed)
        assert notification.status == "FAILED"
        assert notification.failure is not None
        assert notification.failure.reason == "queue_wait_exceeded"
        assert "queue-wait limit" in notification.failure.message
        request = pipeline.emulator.get(notification.request_id or "")
        deadline = time.monotonic() + 10
        while not request.cancelled:
            assert time.monotonic() < deadline, "the request was never cancelled"
            time.sleep(0.1)
            request = pipeline.emulator.get(request.request_id)


def test_kontext_pipeline_local_runs_a_burst_of_images_and_sums_it_up(tmp_path: Path) -> None:
    # Given a folder of three images and one more image of the same name elsewhere
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        (folder / name).write_bytes(
            make_image(size=(96, 64), fmt="JPEG" if name.endswith("jpg") else "PNG")
        )
    (folder / "notes.txt").write_text("not an image")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "a.png").write_bytes(make_image(size=(64, 64)))
    out = tmp_path / "out"
    # When `kontext-pipeline local` is given both, with a model that runs 2 at once
    images = ("--image", str(folder), "--image", str(other / "a.png"))
    options = ("--prompt", "make it blue", "--concurrency", "2")
    result, summary = local_run(*images, *options, out=out, model_seconds=1)
    # Then every image is edited, each under --out/<image name>/, and one summary says so
    assert (summary["images"], summary["succeeded"], summary["failed"]) == (4, 4, 0)
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == ["a", "a-2", "b", "c"]
    for name in ("a", "a-2", "b", "c"):
        assert (out / name / "index.html").is_file()
        assert (out / name / "manifest.json").is_file()
    # And the progress on stderr counted the images as they went
    assert "4 images: " in result.stderr
    assert "4 done · 0 failed" in result.stderr
