"""fal's own Python client (fal-client) drives the emulator: what passes here, a program
written against fal's queue with fal's client would meet from the emulator too.

fal_client builds submit and request URLs on `https://{FAL_QUEUE_RUN_HOST}/` (read once,
when it is imported); the emulator is plain HTTP on 127.0.0.1, so the test points that one
base at it. Everything after the submit follows the URLs the emulator returns, as it would
fal's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import fal_client
import httpx
import pytest
from fal_client.client import Completed, InProgress, Queued
from kontext_pipeline.model_queue.webhooks import JwksCache, verify_webhook
from pytest_httpserver import HTTPServer

from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator
from tests.conftest import data_uri, make_image, received

KEY = "fal-client-parity-key"
APP = "fal-ai/flux-pro/kontext/max"
INTERVAL = 0.05


@pytest.fixture
def emulator() -> Iterator[FalQueueEmulator]:
    timing = EmulatorTiming(queue_seconds=0.2, run_seconds=0.6)
    with FalQueueEmulator(timing=timing, api_key=KEY) as running:
        yield running


@pytest.fixture
def fal(emulator: FalQueueEmulator, monkeypatch: pytest.MonkeyPatch) -> fal_client.SyncClient:
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{emulator.base_url}/")
    return fal_client.SyncClient(key=KEY)


def arguments(prompt: str = "make it blue") -> dict[str, Any]:
    return {"prompt": prompt, "image_url": data_uri(make_image(size=(96, 64)))}


def test_submit_status_with_logs_iter_events_and_result(fal: fal_client.SyncClient) -> None:
    # Given a request submitted with fal's client
    handle = fal.submit(APP, arguments())
    # When its events are followed with logs, as fal's client polls them (?logs=true)
    events = list(handle.iter_events(with_logs=True, interval=INTERVAL))
    # Then it was seen queued, running with logs, and completed
    kinds = [type(event) for event in events]
    assert kinds[0] is Queued
    assert InProgress in kinds
    assert kinds[-1] is Completed
    running = next(event for event in events if isinstance(event, InProgress))
    assert running.logs
    assert running.logs[0]["message"]
    # And its status and result read as fal's client reads them
    assert isinstance(handle.status(with_logs=True), Completed)
    result = handle.get()
    assert result["images"][0]["url"]
    assert result["prompt"] == "make it blue"


def test_a_completed_status_with_loose_fields_reads_without_error(
    fal: fal_client.SyncClient,
) -> None:
    # Given a request whose answers carry null logs and metrics (as fal's may)
    handle = fal.submit(APP, arguments("x [fault:loose-fields]"))
    # When it is followed to the end / Then fal's client reads every status (no KeyError)
    last = list(handle.iter_events(with_logs=False, interval=INTERVAL))[-1]
    assert isinstance(last, Completed)
    assert last.logs is None


def test_status_and_cancel_by_request_id(
    fal: fal_client.SyncClient, emulator: FalQueueEmulator
) -> None:
    # Given a request stuck in the queue
    handle = fal.submit(APP, arguments("x [fault:stuck-in-queue]"))
    # When it is asked about and cancelled by its id, as fal's client builds those URLs
    assert isinstance(fal.status(APP, handle.request_id), Queued)
    fal.cancel(APP, handle.request_id)
    # Then the emulator took it out of the queue
    assert emulator.get(handle.request_id).cancelled


def test_subscribe_reports_queue_updates_and_returns_the_result(
    fal: fal_client.SyncClient,
) -> None:
    # Given fal's one-call way to run a model
    updates: list[Any] = []
    enqueued: list[str] = []
    # When it subscribes with logs and callbacks
    result = fal.subscribe(
        APP,
        arguments(),
        with_logs=True,
        interval=INTERVAL,
        on_enqueue=enqueued.append,
        on_queue_update=updates.append,
        client_timeout=30,
    )
    # Then it was told the request id and each update, and got the images
    assert len(enqueued) == 1
    assert isinstance(updates[-1], Completed)
    assert result["images"]


def test_a_webhook_asked_for_by_fals_client_arrives_signed(
    fal: fal_client.SyncClient, emulator: FalQueueEmulator, httpserver: HTTPServer
) -> None:
    # Given a receiver, and a request submitted with fal's client naming it as the webhook
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("")
    with httpserver.wait(raise_assertions=False, timeout=10) as arrival:
        handle = fal.submit(APP, arguments(), webhook_url=httpserver.url_for("/hook"))
    # When the request completes
    assert arrival.result, "no webhook arrived within 10 s"
    # Then the webhook names the request, carries the result and verifies against the JWKS
    [(headers, raw)] = received(httpserver)
    with httpx.Client(timeout=5) as http:
        verified = verify_webhook(headers, raw, JwksCache(http, emulator.jwks_url))
    assert (verified.request_id, verified.status) == (handle.request_id, "OK")
    assert json.loads(raw)["payload"]["images"]


def test_the_status_stream_is_read_as_fals_queue_sends_it(
    fal: fal_client.SyncClient, emulator: FalQueueEmulator
) -> None:
    # Given a request submitted with fal's client, and its status stream (fal-client 1.0
    # polls; fal's JS client and this pipeline read the stream) with fal's key
    handle = fal.submit(APP, arguments())
    started = time.monotonic()
    with httpx.Client(timeout=10, headers={"Authorization": f"Key {KEY}"}) as http:
        response = http.get(f"{handle.status_url}/stream", params={"logs": "true"})
    # Then each event parses as the status fal's client reads, and the last one completes
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    parsed = [handle._parse_status(event) for event in events]
    assert isinstance(parsed[-1], Completed)
    assert time.monotonic() - started < 10
