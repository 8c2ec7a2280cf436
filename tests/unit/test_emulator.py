"""The model-queue emulator speaks fal's protocol, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest
from kontext_pipeline.webhook_signatures import JwksCache, verify_webhook
from PIL import Image

from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator
from tests.conftest import data_uri, loopback_server, make_image

KEY = "emulator-test-key"
AUTH = {"Authorization": f"Key {KEY}"}


@pytest.fixture
def emulator() -> Iterator[FalQueueEmulator]:
    with FalQueueEmulator(
        timing=EmulatorTiming(queue_seconds=0.2, run_seconds=0.2), api_key=KEY
    ) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0), headers=AUTH) as client:
        yield client


def submit(http: httpx.Client, emulator: FalQueueEmulator, **body: Any) -> dict[str, Any]:
    body.setdefault("image_url", data_uri(make_image(size=(120, 80))))
    response = http.post(f"{emulator.base_url}/fal-ai/flux-pro/kontext/max", json=body)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def test_status_moves_from_queue_to_progress_to_completed(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a submitted request
    answer = submit(http, emulator, prompt="make it blue")
    assert answer["status"] == "IN_QUEUE"
    # When its status is followed / Then it passes through the three states in order
    seen = []
    deadline = time.monotonic() + 5
    while not seen or seen[-1] != "COMPLETED":
        assert time.monotonic() < deadline
        response = http.get(answer["status_url"], params={"logs": "1"})
        status = response.json()["status"]
        assert response.status_code == (200 if status == "COMPLETED" else 202)
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.02)
    assert seen == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]


def test_urls_name_the_owner_and_app_only(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    answer = submit(http, emulator, prompt="x")
    assert answer["status_url"].endswith(f"/fal-ai/flux-pro/requests/{answer['request_id']}/status")
    wrong = (
        f"{emulator.base_url}/fal-ai/flux-pro/kontext/max/requests/{answer['request_id']}/status"
    )
    assert http.get(wrong).status_code == 404


def test_a_key_is_required(emulator: FalQueueEmulator) -> None:
    response = httpx.post(
        f"{emulator.base_url}/fal-ai/flux-pro/kontext/max",
        timeout=5,
        json={"prompt": "x", "image_url": "https://example.com/a.png"},
    )
    assert response.status_code == 401
    assert emulator.submit_count == 0


def test_outputs_are_real_images_in_the_asked_format(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    answer = submit(
        http,
        emulator,
        prompt="make it red",
        num_images=3,
        output_format="png",
        aspect_ratio="1:1",
        seed=5,
    )
    time.sleep(0.5)
    result = http.get(answer["response_url"]).json()
    images = [Image.open(io.BytesIO(http.get(item["url"]).content)) for item in result["images"]]
    assert [image.format for image in images] == ["PNG"] * 3
    assert {image.size for image in images} == {(80, 80)}
    assert len({image.tobytes() for image in images}) == 3
    assert result["seed"] == 5


def test_sync_mode_returns_data_uris(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    answer = submit(http, emulator, prompt="x", sync_mode=True)
    time.sleep(0.5)
    url = http.get(answer["response_url"]).json()["images"][0]["url"]
    assert url.startswith("data:image/jpeg;base64,")


def test_cancelled_in_queue_costs_nothing(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    answer = submit(http, emulator, prompt="x [fault:stuck-in-queue]")
    assert http.put(answer["cancel_url"]).status_code == 202
    assert http.put(answer["cancel_url"]).json() == {"status": "ALREADY_COMPLETED"}
    request = emulator.get(answer["request_id"])
    assert request.cancelled
    assert request.model_seconds == 0


def test_injected_faults_hit_the_next_calls(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    emulator.inject_fault("submit-429", times=2)
    url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
    body = {"prompt": "x", "image_url": data_uri(make_image())}
    assert [http.post(url, json=body).status_code for _ in range(3)] == [429, 429, 200]


class _Receiver(BaseHTTPRequestHandler):
    deliveries: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.deliveries.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_webhooks_are_signed_so_the_pipeline_can_verify_them(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a receiver on 127.0.0.1 and a request that asks for a webhook
    _Receiver.deliveries = []
    with loopback_server(_Receiver) as base_url:
        hook = f"{base_url}/hook"
        url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
        body = {"prompt": "x", "image_url": data_uri(make_image())}
        request_id = http.post(url, params={"fal_webhook": hook}, json=body).json()["request_id"]
        # When the request completes
        deadline = time.monotonic() + 5
        while not _Receiver.deliveries:
            assert time.monotonic() < deadline, "no webhook arrived"
            time.sleep(0.02)
    # Then the webhook verifies against the emulator's JWKS, with the pipeline's own check
    headers, raw = _Receiver.deliveries[0]
    verified = verify_webhook(headers, raw, JwksCache(httpx.Client(timeout=5), emulator.jwks_url))
    assert (verified.request_id, verified.status) == (request_id, "OK")


def test_run_times_vary_within_the_spread() -> None:
    # Given a model that runs 10 s ± 30%
    timing = EmulatorTiming(queue_seconds=0.0, run_seconds=10.0, run_spread=0.3)
    rng = random.Random(7)

    # When many runs are drawn
    runs = [timing.draw_run_seconds(rng) for _ in range(200)]

    # Then every run lies within the spread, and they differ
    assert all(7.0 <= seconds <= 13.0 for seconds in runs)
    assert max(runs) - min(runs) > 3.0
    assert EmulatorTiming(run_seconds=10.0).draw_run_seconds(rng) == 10.0


# --- issue 11: the emulator does what fal does --------------------------------------------


def test_the_submit_answer_names_the_request_and_its_gateway_id(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a submit
    url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
    response = http.post(url, json={"prompt": "x", "image_url": data_uri(make_image())})
    # When answered / Then fal's fields and header are there
    answer = response.json()
    assert answer["gateway_request_id"] == answer["request_id"]
    assert response.headers["x-fal-request-id"] == answer["request_id"]


def test_an_ingress_error_has_no_request_id_and_queues_nothing(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given the ingress in front of the queue fails once
    url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
    body = {"prompt": "x [fault:submit-503*1]", "image_url": data_uri(make_image())}
    # When submitted / Then the answer is the proxy's page, and nothing is queued
    response = http.post(url, json=body)
    assert response.status_code == 503
    assert "x-fal-request-id" not in response.headers
    assert b"nginx" in response.content
    assert emulator.submit_count == 0


def test_a_5xx_that_names_a_request_has_queued_it(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
    body = {"prompt": "x [fault:submit-503-queued]", "image_url": data_uri(make_image())}
    response = http.post(url, json=body)
    assert response.status_code == 503
    assert emulator.requests()[0].request_id == response.headers["x-fal-request-id"]


def test_cancelling_a_running_request_is_only_a_request(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request a runner has already started
    answer = submit(http, emulator, prompt="make it blue")
    deadline = time.monotonic() + 5
    while http.get(answer["status_url"]).json()["status"] != "IN_PROGRESS":
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.01)
    # When it is cancelled
    cancel = http.put(answer["cancel_url"])
    # Then fal only signals the runner: the request still completes, with its result
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    while http.get(answer["status_url"]).json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline, "never completed"
        time.sleep(0.01)
    assert http.get(answer["response_url"]).status_code == 200
    request = emulator.get(answer["request_id"])
    assert (request.cancel_requested, request.cancelled) == (True, False)


def test_an_inline_input_over_ten_megabytes_fails_to_load(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a data: URI over 10 MB encoded (what fal's maintainers report failing)
    padding = "A" * (10 * 1024 * 1024)
    answer = submit(http, emulator, prompt="x", image_url=f"data:image/png;base64,{padding}")
    deadline = time.monotonic() + 5
    while http.get(answer["status_url"]).json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # When the result is asked for / Then the model could not load it
    response = http.get(answer["response_url"])
    assert response.status_code == 422
    assert "too large" in response.text


def wait_for_deliveries(count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(_Receiver.deliveries) < count:
        assert time.monotonic() < deadline, f"{len(_Receiver.deliveries)} of {count} webhooks"
        time.sleep(0.02)


def test_webhooks_are_retried_on_fals_schedule_scaled_down(http: httpx.Client) -> None:
    # Given fal's schedule (10 retries over 2 hours) scaled by 1/1000, and the first two
    # deliveries lost
    _Receiver.deliveries = []
    with (
        FalQueueEmulator(
            timing=EmulatorTiming(queue_seconds=0.0, run_seconds=0.05),
            api_key=KEY,
            webhook_time_scale=0.001,
        ) as emulator,
        loopback_server(_Receiver) as base_url,
    ):
        url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
        body = {"prompt": "x [fault:webhook-dropped*2]", "image_url": data_uri(make_image())}
        request_id = http.post(url, params={"fal_webhook": f"{base_url}/hook"}, json=body).json()[
            "request_id"
        ]
        # When the request completes
        wait_for_deliveries(1)
        attempts = emulator.get(request_id).webhook_attempts
    # Then it arrives on the third attempt, the gaps doubling from ~7 ms (7 s at full scale)
    assert len(attempts) == 3
    first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.006 <= first < 2.0  # (generous: a loaded machine wakes the sender late)
    assert second >= 0.012
    assert len(_Receiver.deliveries) == 1


def test_an_error_webhook_carries_the_detail_in_its_payload(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request the model rejects, asking for a webhook
    _Receiver.deliveries = []
    with loopback_server(_Receiver) as base_url:
        url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
        body = {"prompt": "x", "image_url": data_uri(make_image()), "aspect_ratio": "5:4"}
        http.post(url, params={"fal_webhook": f"{base_url}/hook"}, json=body)
        # When it completes
        wait_for_deliveries(1)
    # Then the ERROR webhook has fal's headline and the 422 detail in payload
    document = json.loads(_Receiver.deliveries[0][1])
    assert document["status"] == "ERROR"
    assert document["error"] == "Invalid status code: 422"
    assert document["payload"]["detail"][0]["loc"] == ["body", "aspect_ratio"]


def test_a_webhook_for_a_request_fal_retried_names_the_gateway_id(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    _Receiver.deliveries = []
    with loopback_server(_Receiver) as base_url:
        url = f"{emulator.base_url}/fal-ai/flux-pro/kontext/max"
        body = {"prompt": "x [fault:webhook-gateway-id]", "image_url": data_uri(make_image())}
        request_id = http.post(url, params={"fal_webhook": f"{base_url}/hook"}, json=body).json()[
            "request_id"
        ]
        wait_for_deliveries(1)
    headers, raw = _Receiver.deliveries[0]
    document = json.loads(raw)
    assert document["request_id"] == request_id != document["gateway_request_id"]
    assert headers["X-Fal-Webhook-Request-Id"] == document["gateway_request_id"]


# --- issue 16: fal's per-key concurrency ---------------------------------------------------


def test_with_a_concurrency_limit_the_rest_wait_in_order_with_true_positions(
    http: httpx.Client,
) -> None:
    # Given a key that runs 2 requests at once, and 5 requests submitted together
    timing = EmulatorTiming(queue_seconds=0.0, run_seconds=0.4, concurrency=2)
    with FalQueueEmulator(timing=timing, api_key=KEY) as emulator:
        answers = [submit(http, emulator, prompt=f"edit {index}") for index in range(5)]
        # When their statuses are read at once
        statuses = [http.get(answer["status_url"]).json() for answer in answers]
        # Then two run and three wait, at positions 0, 1, 2 in submit order
        assert [s["status"] for s in statuses] == ["IN_PROGRESS"] * 2 + ["IN_QUEUE"] * 3
        assert [s.get("queue_position") for s in statuses[2:]] == [0, 1, 2]
        # And, followed to the end, no more than two ever ran at once, in submit order
        deadline = time.monotonic() + 10
        while any(http.get(a["status_url"]).json()["status"] != "COMPLETED" for a in answers):
            assert time.monotonic() < deadline, "the queue never drained"
            time.sleep(0.05)
        runs = [emulator.get(a["request_id"]) for a in answers]
        starts = [run.started_at or 0.0 for run in runs]
        assert starts == sorted(starts)
        for run in runs:
            overlapping = [
                other
                for other in runs
                if (other.started_at or 0) <= (run.started_at or 0) < (other.completed_at or 0)
            ]
            assert len(overlapping) <= 2


def test_cancelling_a_waiting_request_moves_the_line_up(http: httpx.Client) -> None:
    # Given one runner, busy, and two requests waiting behind it
    timing = EmulatorTiming(queue_seconds=0.0, run_seconds=5.0, concurrency=1)
    with FalQueueEmulator(timing=timing, api_key=KEY) as emulator:
        first, second, third = (submit(http, emulator, prompt=f"e{i}") for i in range(3))
        assert http.get(third["status_url"]).json()["queue_position"] == 1
        # When the one ahead of the last is cancelled
        assert http.put(second["cancel_url"]).status_code == 202
        # Then the last is next in line, and the cancelled one never ran
        assert http.get(third["status_url"]).json()["queue_position"] == 0
        assert emulator.get(second["request_id"]).started_at is None
        assert http.get(first["status_url"]).json()["status"] == "IN_PROGRESS"


def test_the_emulator_command_takes_a_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the emulator command, with the server itself replaced by a probe
    from kontext_tools import emulator as module

    seen: list[EmulatorTiming] = []

    class StopError(Exception):
        pass

    def probe(**kwargs: Any) -> None:
        seen.append(kwargs["timing"])
        raise StopError

    monkeypatch.setattr(module, "FalQueueEmulator", probe)
    # When it is given --concurrency
    with pytest.raises(StopError):
        module.main(["--concurrency", "2", "--run-seconds", "1"])
    # Then the limit reaches the emulator's timing
    assert (seen[0].concurrency, seen[0].run_seconds) == (2, 1.0)
