"""The model-queue emulator speaks fal's protocol, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from kontext_pipeline.model_queue.webhooks import JwksCache, verify_webhook
from PIL import Image
from pytest_httpserver import HTTPServer

from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator
from kontext_tools.emulator.command import parser, timing_from
from kontext_tools.emulator.faults import Faults
from kontext_tools.emulator.validation import validate
from tests.conftest import data_uri, load_event, make_image, received

KEY = "emulator-test-key"
AUTH = {"Authorization": f"Key {KEY}"}
MODEL = "fal-ai/flux-pro/kontext/max"
QUICK = EmulatorTiming(queue_seconds=0.2, run_seconds=0.2)


def keyed(timing: EmulatorTiming = QUICK, **options: Any) -> FalQueueEmulator:
    """An emulator that wants this module's key."""
    return FalQueueEmulator(timing=timing, api_key=KEY, **options)


@pytest.fixture
def emulator() -> Iterator[FalQueueEmulator]:
    with keyed() as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0), headers=AUTH) as client:
        yield client


def post(
    http: httpx.Client, emulator: FalQueueEmulator, *, hook: str | None = None, **body: Any
) -> httpx.Response:
    """A submit of `body` (a small image unless it names one), with a webhook URL if given."""
    body.setdefault("image_url", data_uri(make_image(size=(120, 80))))
    params = {"fal_webhook": hook} if hook else {}
    return http.post(f"{emulator.base_url}/{MODEL}", params=params, json=body)


def submit(http: httpx.Client, emulator: FalQueueEmulator, **body: Any) -> dict[str, Any]:
    response = post(http, emulator, **body)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def wait_for_status(http: httpx.Client, answer: dict[str, Any], status: str) -> None:
    deadline = time.monotonic() + 5
    while http.get(answer["status_url"]).json()["status"] != status:
        assert time.monotonic() < deadline, f"never {status}"
        time.sleep(0.01)


def test_status_moves_from_queue_to_progress_to_completed(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a submitted request
    answer = submit(http, emulator, prompt="make it blue")
    assert answer["status"] == "IN_QUEUE"
    # When its status is followed / Then it passes through the three states in order
    seen: list[str] = []
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


def test_answers_carry_the_fields_of_fals_own(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a submitted request
    answer = submit(http, emulator, prompt="make it blue")
    # When it has completed and its result is fetched
    wait_for_status(http, answer, "COMPLETED")
    status = http.get(answer["status_url"]).json()
    result = http.get(answer["response_url"]).json()
    # Then each answer has at least the fields of fal's sample answers
    assert set(load_event("fal_submit_response")) <= set(answer)
    assert set(load_event("fal_status_completed")) <= set(status)
    assert set(load_event("fal_result")) == set(result)
    assert set(load_event("fal_result")["images"][0]) == set(result["images"][0])


def test_urls_name_the_owner_and_app_only(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    # Given a submitted request
    answer = submit(http, emulator, prompt="x")
    # When its URLs are read / Then they sit under the owner/app, not the model's full path
    assert answer["status_url"].endswith(f"/fal-ai/flux-pro/requests/{answer['request_id']}/status")
    wrong = f"{emulator.base_url}/{MODEL}/requests/{answer['request_id']}/status"
    assert http.get(wrong).status_code == 404


def test_a_key_is_required(emulator: FalQueueEmulator) -> None:
    # Given a caller without the key
    # When it submits
    response = httpx.post(
        f"{emulator.base_url}/{MODEL}",
        timeout=5,
        json={"prompt": "x", "image_url": "https://example.com/a.png"},
    )
    # Then it is refused, and nothing is queued
    assert response.status_code == 401
    assert emulator.submit_count == 0


def test_a_body_that_is_not_json_is_a_422(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    # Given a submit whose body is not JSON
    # When it is sent
    response = http.post(f"{emulator.base_url}/{MODEL}", content=b"{not json")
    # Then the model's own validation answers, and nothing is queued
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert emulator.submit_count == 0


def test_outputs_are_real_images_in_the_asked_format(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request for three square PNGs with a seed
    answer = submit(
        http,
        emulator,
        prompt="make it red",
        num_images=3,
        output_format="png",
        aspect_ratio="1:1",
        seed=5,
    )
    # When it has completed and its hosted files are fetched
    time.sleep(0.5)
    result = http.get(answer["response_url"]).json()
    images = [Image.open(io.BytesIO(http.get(item["url"]).content)) for item in result["images"]]
    # Then they are three different square PNGs, made with that seed
    assert [image.format for image in images] == ["PNG"] * 3
    assert {image.size for image in images} == {(80, 80)}
    assert len({image.tobytes() for image in images}) == 3
    assert result["seed"] == 5


def test_sync_mode_returns_data_uris(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    # Given a request in sync mode
    answer = submit(http, emulator, prompt="x", sync_mode=True)
    # When its result is fetched
    time.sleep(0.5)
    url = http.get(answer["response_url"]).json()["images"][0]["url"]
    # Then the image comes inline
    assert url.startswith("data:image/jpeg;base64,")


def test_a_redirect_fault_sends_a_file_request_round_once(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a completed request whose hosted files redirect once
    answer = submit(http, emulator, prompt="x [fault:output-redirect]")
    wait_for_status(http, answer, "COMPLETED")
    url = http.get(answer["response_url"]).json()["images"][0]["url"]
    # When its file is fetched without following redirects, then with
    first = http.get(url)
    followed = http.get(url, follow_redirects=True)
    # Then the first answer points at the same file; followed, the file is served
    assert (first.status_code, first.headers["Location"]) == (302, f"{url}?redirected=1")
    assert (followed.status_code, followed.headers["Content-Type"]) == (200, "image/jpeg")


def test_cancelled_in_queue_costs_nothing(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    # Given a request stuck in the queue
    answer = submit(http, emulator, prompt="x [fault:stuck-in-queue]")
    # When it is cancelled, twice
    first, second = http.put(answer["cancel_url"]), http.put(answer["cancel_url"])
    # Then the first cancel ends it, without a run, and the second finds it over
    assert first.status_code == 202
    assert second.json() == {"status": "ALREADY_COMPLETED"}
    request = emulator.get(answer["request_id"])
    assert request.cancelled
    assert request.model_seconds == 0


def test_injected_faults_hit_the_next_calls(emulator: FalQueueEmulator, http: httpx.Client) -> None:
    # Given two 429s injected for the next submits
    emulator.inject_fault("submit-429", times=2)
    # When three submits are sent / Then the first two are refused and the third is queued
    assert [post(http, emulator, prompt="x").status_code for _ in range(3)] == [429, 429, 200]


def test_a_counted_marker_fails_that_many_calls_then_stops() -> None:
    # Given a prompt whose marker fails two calls, armed for one scope
    faults = Faults()
    faults.arm("request-1", "x [fault:status-429*2]")
    # When that scope's calls ask for the fault
    hits = [faults.hits("request-1", "status-429") for _ in range(3)]
    # Then two fail, the third does not, and no other scope was armed
    assert hits == [True, True, False]
    assert not faults.hits("request-2", "status-429")


def test_an_injected_fault_hits_any_scope_before_the_markers() -> None:
    # Given a marker with a value, and one injected fault of the same name
    faults = Faults()
    faults.arm("request-1", "x [fault:output-huge=2]")
    faults.inject("output-huge", times=1)
    # When the fault is taken twice / Then the injected one comes first (no value), then the
    # marker's
    assert [faults.take("request-1", "output-huge") for _ in range(2)] == [
        (True, None),
        (True, "2"),
    ]


@contextmanager
def one_webhook(receiver: HTTPServer) -> Iterator[str]:
    """The receiver takes one webhook at /hook: yields its URL; the block ends once the
    webhook has arrived, and fails if none came within 10 s."""
    receiver.expect_oneshot_request("/hook", method="POST").respond_with_data("")
    with receiver.wait(raise_assertions=False, timeout=10) as waiting:
        yield str(receiver.url_for("/hook"))
    assert waiting.result, "no webhook arrived within 10 s"


def test_webhooks_are_signed_so_the_pipeline_can_verify_them(
    emulator: FalQueueEmulator, http: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given a receiver on 127.0.0.1 and a request that asks for a webhook
    with one_webhook(httpserver) as hook:
        request_id = submit(http, emulator, prompt="x", hook=hook)["request_id"]
        # When the request completes
    # Then the webhook verifies against the emulator's JWKS, with the pipeline's own check,
    # and has the fields of fal's
    [(headers, raw)] = received(httpserver)
    verified = verify_webhook(headers, raw, JwksCache(httpx.Client(timeout=5), emulator.jwks_url))
    assert (verified.request_id, verified.status) == (request_id, "OK")
    assert set(json.loads(raw)) == set(load_event("fal_webhook_ok"))


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


# --- the model's own checks ----------------------------------------------------------------


# Each field the model takes: a value it accepts, and one it refuses.
FIELDS = (
    ("prompt", "make it blue", "  "),
    ("image_url", "https://example.com/a.png", "ftp://example.com/a.png"),
    ("output_format", "png", "webp"),
    ("num_images", 4, 5),
    ("guidance_scale", 20, 0.5),
    ("seed", 3, True),  # a bool is no integer here
    ("safety_tolerance", "2", 3),
    ("aspect_ratio", "9:21", "5:4"),
    ("sync_mode", False, "yes"),
    ("enhance_prompt", True, 1),
)


def test_a_valid_body_passes_the_models_checks() -> None:
    # Given a body with every field the model takes, each valid
    body = {name: good for name, good, _ in FIELDS}
    # When it is checked / Then nothing is wrong
    assert validate(body) == []


def test_each_bad_field_is_a_detail_item_of_its_own_in_field_order() -> None:
    # Given a body where every field is wrong
    body = {name: bad for name, _, bad in FIELDS}
    # When it is checked
    problems = validate(body)
    # Then each field has its item, in the order the model checks them
    assert [problem["loc"] for problem in problems] == [["body", name] for name, _, _ in FIELDS]
    assert problems[3]["msg"] == "ensure this value is between 1 and 4"


def test_absent_fields_take_the_models_defaults() -> None:
    # Given a body with neither prompt nor image, and nothing optional
    # When it is checked
    problems = validate({})
    # Then only the two required fields are missing
    assert [problem["loc"][1] for problem in problems] == ["prompt", "image_url"]


# --- issue 11: the emulator does what fal does --------------------------------------------


def test_the_submit_answer_names_the_request_and_its_gateway_id(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a submit
    # When answered
    response = post(http, emulator, prompt="x")
    # Then fal's fields and header are there
    answer = response.json()
    assert answer["gateway_request_id"] == answer["request_id"]
    assert response.headers["x-fal-request-id"] == answer["request_id"]


def test_an_ingress_error_has_no_request_id_and_queues_nothing(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given the ingress in front of the queue fails once
    # When a request is submitted
    response = post(http, emulator, prompt="x [fault:submit-503*1]")
    # Then the answer is the proxy's page, and nothing is queued
    assert response.status_code == 503
    assert "x-fal-request-id" not in response.headers
    assert b"nginx" in response.content
    assert emulator.submit_count == 0


def test_a_5xx_that_names_a_request_has_queued_it(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a submit that fal queues but answers with a 503
    # When it is sent
    response = post(http, emulator, prompt="x [fault:submit-503-queued]")
    # Then the 503 names the request the queue kept
    assert response.status_code == 503
    assert emulator.requests()[0].request_id == response.headers["x-fal-request-id"]


def test_a_status_cut_short_is_half_a_json_document(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request whose next status answer is truncated
    answer = submit(http, emulator, prompt="x [fault:status-truncated*1]")
    # When its status is asked for twice
    cut, whole = http.get(answer["status_url"]), http.get(answer["status_url"])
    # Then the first is a 200 whose JSON stops half-way, and the next is whole again
    assert cut.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert whole.json()["request_id"] == answer["request_id"]


def test_cancelling_a_running_request_is_only_a_request(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request a runner has already started
    answer = submit(http, emulator, prompt="make it blue")
    wait_for_status(http, answer, "IN_PROGRESS")
    # When it is cancelled
    cancel = http.put(answer["cancel_url"])
    # Then fal only signals the runner: the request still completes, with its result
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    wait_for_status(http, answer, "COMPLETED")
    assert http.get(answer["response_url"]).status_code == 200
    request = emulator.get(answer["request_id"])
    assert (request.cancel_requested, request.cancelled) == (True, False)


def test_the_outputs_are_made_while_the_request_runs(
    http: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given an input hosted over HTTP and a run long enough to watch
    httpserver.expect_request("/input.png").respond_with_data(
        make_image(size=(120, 80)), content_type="image/png"
    )
    with keyed(EmulatorTiming(queue_seconds=0.0, run_seconds=1.0)) as emulator:
        answer = submit(http, emulator, prompt="x", image_url=httpserver.url_for("/input.png"))
        # When the request is still running and no one has asked for its result
        time.sleep(0.5)
        status = http.get(answer["status_url"]).json()["status"]
        fetched_while_running = len(httpserver.log)
        wait_for_status(http, answer, "COMPLETED")
        result = http.get(answer["response_url"])
    # Then the model has already fetched its input, as fal's does during the run (the
    # result is ready at COMPLETED, so making it is not counted after), and fetched it once
    assert status == "IN_PROGRESS"
    assert fetched_while_running == 1
    assert result.status_code == 200
    assert len(httpserver.log) == 1


def test_an_input_that_will_not_load_fails_when_the_result_is_asked_for(
    emulator: FalQueueEmulator, http: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given an input URL that answers 404 (the run fetches it, and fails, while it runs)
    httpserver.expect_request("/gone.png").respond_with_data("gone", status=404)
    answer = submit(http, emulator, prompt="x", image_url=httpserver.url_for("/gone.png"))
    wait_for_status(http, answer, "COMPLETED")
    # When the result is asked for
    response = http.get(answer["response_url"])
    # Then it is fal's 422 for an image it could not load
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "image_load_error"


def test_an_inline_input_over_ten_megabytes_fails_to_load(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a data: URI over 10 MB encoded (what fal's maintainers report failing)
    padding = "A" * (10 * 1024 * 1024)
    answer = submit(http, emulator, prompt="x", image_url=f"data:image/png;base64,{padding}")
    wait_for_status(http, answer, "COMPLETED")
    # When the result is asked for
    response = http.get(answer["response_url"])
    # Then the model could not load it
    assert response.status_code == 422
    assert "too large" in response.text


def test_webhooks_are_retried_on_fals_schedule_scaled_down(
    http: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given fal's schedule (10 retries over 2 hours) scaled by 1/1000, and the first two
    # deliveries lost
    timing = EmulatorTiming(queue_seconds=0.0, run_seconds=0.05, webhook_time_scale=0.001)
    with keyed(timing) as emulator:
        prompt = "x [fault:webhook-dropped*2]"
        with one_webhook(httpserver) as hook:
            request_id = submit(http, emulator, prompt=prompt, hook=hook)["request_id"]
            # When the request completes
        attempts = emulator.get(request_id).webhook_attempts
    # Then it arrives on the third attempt, the gaps doubling from ~7 ms (7 s at full scale)
    assert len(attempts) == 3
    first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.006 <= first < 2.0  # (generous: a loaded machine wakes the sender late)
    assert second >= 0.012
    assert len(httpserver.log) == 1


def test_an_error_webhook_carries_the_detail_in_its_payload(
    emulator: FalQueueEmulator, http: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given a request the model rejects, asking for a webhook
    with one_webhook(httpserver) as hook:
        submit(http, emulator, prompt="x", aspect_ratio="5:4", hook=hook)
        # When it completes
    # Then the ERROR webhook has fal's headline and the 422 detail in payload
    [(_, raw)] = received(httpserver)
    document = json.loads(raw)
    assert set(document) == set(load_event("fal_webhook_error"))
    assert document["status"] == "ERROR"
    assert document["error"] == "Invalid status code: 422"
    assert document["payload"]["detail"][0]["loc"] == ["body", "aspect_ratio"]


def test_a_webhook_for_a_request_fal_retried_names_the_gateway_id(
    emulator: FalQueueEmulator, http: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given a request fal retried internally, asking for a webhook
    with one_webhook(httpserver) as hook:
        prompt = "x [fault:webhook-gateway-id]"
        request_id = submit(http, emulator, prompt=prompt, hook=hook)["request_id"]
        # When it completes
    # Then the webhook names both ids, and its signature header the gateway's
    [(headers, raw)] = received(httpserver)
    document = json.loads(raw)
    assert document["request_id"] == request_id != document["gateway_request_id"]
    assert headers["x-fal-webhook-request-id"] == document["gateway_request_id"]


# --- issue 16: fal's per-key concurrency ---------------------------------------------------


def test_with_a_concurrency_limit_the_rest_wait_in_order_with_true_positions(
    http: httpx.Client,
) -> None:
    # Given a key that runs 2 requests at once, and 5 requests submitted together
    with keyed(EmulatorTiming(queue_seconds=0.0, run_seconds=0.4, concurrency=2)) as emulator:
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
    with keyed(EmulatorTiming(queue_seconds=0.0, run_seconds=5.0, concurrency=1)) as emulator:
        first, second, third = (submit(http, emulator, prompt=f"e{i}") for i in range(3))
        assert http.get(third["status_url"]).json()["queue_position"] == 1
        # When the one ahead of the last is cancelled
        assert http.put(second["cancel_url"]).status_code == 202
        # Then the last is next in line, and the cancelled one never ran
        assert http.get(third["status_url"]).json()["queue_position"] == 0
        assert emulator.get(second["request_id"]).started_at is None
        assert http.get(first["status_url"]).json()["status"] == "IN_PROGRESS"


def test_the_emulator_command_takes_a_concurrency() -> None:
    # Given the emulator command's options, with a concurrency and a run time
    args = parser().parse_args(["--concurrency", "2", "--run-seconds", "1"])
    # When they are made into the emulator's timing
    timing = timing_from(args)
    # Then the limit and the run time reach it, and the rest keep the command's defaults
    assert (timing.concurrency, timing.run_seconds) == (2, 1.0)
    assert (timing.queue_seconds, timing.webhook_time_scale) == (0.5, 0.001)


# --- issue 23: parity with fal's own client; the status stream ---------------------------


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The `data:` events of a whole status stream, in order."""
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


@pytest.mark.parametrize(("logs", "sent"), [("1", True), ("true", True), ("false", False)])
def test_logs_are_sent_for_logs_1_and_for_logs_true(
    http: httpx.Client, logs: str, sent: bool
) -> None:
    # Given a request that runs at once, for a while
    with keyed(EmulatorTiming(queue_seconds=0.0, run_seconds=30.0)) as emulator:
        queued = submit(http, emulator, prompt="x")
        # When its status is asked with logs=1 (fal's docs), logs=true or logs=false (fal's
        # Python client)
        answer = http.get(queued["status_url"], params={"logs": logs}).json()
    # Then the logs come for the first two, and the key is there (null) for the last
    assert answer["status"] == "IN_PROGRESS"
    assert bool(answer["logs"]) is sent
    assert "logs" in answer


def test_loose_fields_send_null_logs_rather_than_leaving_the_key_out(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request with loose fields, completed
    queued = submit(http, emulator, prompt="x [fault:loose-fields]")
    time.sleep(0.5)
    # When its status is asked
    answer = http.get(queued["status_url"], params={"logs": "false"}).json()
    # Then logs and metrics are there, null (fal_client reads data["logs"] unconditionally)
    assert answer["status"] == "COMPLETED"
    assert "logs" in answer
    assert answer["logs"] is None
    assert answer["metrics"] is None


def test_the_status_stream_sends_each_change_and_ends_after_completed(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request just submitted (0.2 s queued, 0.2 s running)
    queued = submit(http, emulator, prompt="x")
    # When its status stream is read to the end
    response = http.get(f"{queued['status_url']}/stream", params={"logs": "1"})
    # Then it is server-sent events: IN_QUEUE, IN_PROGRESS (with logs), COMPLETED, then the end
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response)
    assert [event["status"] for event in events] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert events[1]["logs"]
    assert events[2]["metrics"]["inference_time"] > 0
    assert all(event["request_id"] == queued["request_id"] for event in events)
    # And it counts as one request, not as polls
    request = emulator.get(queued["request_id"])
    assert (request.status_streams, request.status_polls) == (1, 0)


def test_the_stream_of_a_request_already_done_is_its_completed_event(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    # Given a request that completed before its stream was asked for
    queued = submit(http, emulator, prompt="x")
    time.sleep(0.6)
    # When the stream is read / Then one COMPLETED event, and the stream has ended
    events = sse_events(http.get(f"{queued['status_url']}/stream"))
    assert [event["status"] for event in events] == ["COMPLETED"]


def test_the_stream_of_an_unknown_request_is_a_404(
    emulator: FalQueueEmulator, http: httpx.Client
) -> None:
    queued = submit(http, emulator, prompt="x")
    unknown = queued["status_url"].replace(queued["request_id"], "0" * 36)
    assert http.get(f"{unknown}/stream").status_code == 404


@pytest.mark.parametrize(
    ("fault", "code", "statuses"),
    [("stream-absent", 405, []), ("stream-cut", 200, ["IN_QUEUE"])],
)
def test_a_stream_can_be_absent_or_cut_off(
    emulator: FalQueueEmulator, http: httpx.Client, fault: str, code: int, statuses: list[str]
) -> None:
    # Given a request whose stream is absent / cut off after its first event
    queued = submit(http, emulator, prompt=f"x [fault:{fault}]")
    # When the stream is read
    response = http.get(f"{queued['status_url']}/stream")
    # Then the queue answers as such a queue would: a 405, or one event and the end
    assert response.status_code == code
    assert [event["status"] for event in sse_events(response)] == statuses
