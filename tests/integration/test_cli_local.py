"""`kontext-pipeline local` as a person runs it: a process of its own, its terminal output,
its exit code, what it leaves in --out."""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from tests.conftest import ROOT, base_url_of, kontext, received

SAMPLE = str(ROOT / "samples" / "kitchen-table.jpg")
FAST = ["--model-seconds", "0.3", "--queue-seconds", "0.1"]
# What must never reach the terminal: the functions' JSON log lines and moto's internals.
LOG_NOISE = ('{"level"', "Exception=", "moto.", "Traceback")


def test_a_json_run_with_sync_mode_and_parameter_overrides(tmp_path: Path) -> None:
    # Given the sample image, sync mode and a template parameter set as sam deploy takes it
    out = tmp_path / "out"
    # When run for a script
    run = kontext(
        "local",
        "--image",
        SAMPLE,
        "--prompt",
        "Put a donut next to the flour.",
        "--num-images",
        "2",
        "--sync-mode",
        "--parameter-overrides",
        "OutputPrefix=edited/",
        "--out",
        str(out),
        "--json",
        *FAST,
    )
    # Then stdout is one JSON document, and the outputs went under the overridden prefix
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["status"] == "SUCCEEDED"
    uris = [output["s3_uri"] for output in document["notification"]["outputs"]]
    assert len(uris) == 2
    assert all("/edited/kitchen-table/" in uri for uri in uris)
    # And the files, the report and the log file are where the document says
    for path in [*document["files"], document["report"], document["log_file"]]:
        assert Path(path).is_file(), path
    assert sorted(Path(path).name for path in document["files"]) == [
        "0.jpg",
        "1.jpg",
        "manifest.json",
    ]
    # And progress went to stderr, without the functions' logs
    assert "state " in run.stderr
    assert not [noise for noise in LOG_NOISE if noise in run.stderr + run.stdout]


def test_a_10000_character_prompt_runs_through_a_sidecar(tmp_path: Path) -> None:
    # Given a prompt far past S3's 2 KB of user metadata
    prompt = ("Put a donut next to the flour. " * 323)[:10_000].strip()
    # When run
    run = kontext("local", "--image", SAMPLE, "--prompt", prompt, "--out", str(tmp_path), *FAST)
    # Then the job ran with all of it
    assert run.returncode == 0, run.stderr
    assert ".prompt.txt" in run.stdout
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["prompt"] == prompt


def test_a_failing_run_prints_the_reason_and_keeps_the_logs_in_a_file(tmp_path: Path) -> None:
    # Given a file that is not an image
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping list")
    out = tmp_path / "out"
    # When run
    run = kontext("local", "--image", str(notes), "--prompt", "x", "--out", str(out), *FAST)
    # Then the terminal gets the reason and the message, and where the logs are
    assert run.returncode == 1
    assert "FAILED after" in run.stdout
    assert "not_an_image: s3://" in run.stdout
    assert f"{out / 'local-run.log'}" in run.stdout
    assert not [noise for noise in LOG_NOISE if noise in run.stderr + run.stdout]
    # And the logs of the emulated AWS are in the file, the failure in the report
    assert "not_an_image" in (out / "local-run.log").read_text()
    assert 'id="failure"' in (out / "index.html").read_text()
    # And the failure notification names the prompt and the object version, as a success does
    notification = json.loads(json.loads((out / "notification.json").read_text())["Message"])
    assert notification["prompt"] == "x"
    assert notification["source"]["version_id"]


def test_a_run_past_its_timeout_stops_with_one_line_and_exit_3(tmp_path: Path) -> None:
    # Given a model that takes a minute and a 3 s timeout
    started = time.monotonic()
    # When the local run waits for it
    run = kontext(
        "local",
        "--image",
        SAMPLE,
        "--prompt",
        "x",
        "--out",
        str(tmp_path),
        "--model-seconds",
        "60",
        "--timeout",
        "3",
    )
    # Then it gives up soon, in one line that says nothing is left running
    assert run.returncode == 3
    assert time.monotonic() - started < 60
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no result within --timeout 3 s")
    assert "nothing is left running" in last
    assert "Traceback" not in run.stderr


def test_ctrl_c_stops_the_run_within_seconds_and_says_what_was_left(tmp_path: Path) -> None:
    # Given a run whose model takes a minute, waiting on the model
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kontext_tools.cli", "local", "--image", SAMPLE),
            *("--prompt", "x", "--out", str(tmp_path), "--model-seconds", "60"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stderr = process.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "state WaitForModel" not in seen and time.monotonic() < deadline:
            try:
                seen += lines.get(timeout=1)
            except queue.Empty:
                continue
        assert "state WaitForModel" in seen, "the run never reached the model"
        # When Ctrl-C is pressed
        pressed = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        stopped_after = time.monotonic() - pressed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    time.sleep(0.2)  # the reader thread drains what is left
    while not lines.empty():
        seen += lines.get()
    # Then it stops promptly, with the interrupt's exit code and one line, no traceback
    assert code == 130
    assert stopped_after < 5, f"took {stopped_after:.1f} s to stop"
    assert seen.strip().splitlines()[-1] == (
        "error: interrupted: the local run was stopped and nothing is left running"
    )
    assert "Traceback" not in seen
    assert "interrupted: stopping ..." in seen  # said at once, before the teardown


def test_a_standalone_emulator_serves_the_local_run(tmp_path: Path) -> None:
    # Given `kontext-pipeline emulator` on a port of its own, its options passed through
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulator = subprocess.Popen(
        [
            *(sys.executable, "-m", "kontext_tools.cli", "emulator", "--port", str(port)),
            *("--run-seconds", "0.3", "--queue-seconds", "0.1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its banner says it is listening
    )
    try:
        assert emulator.stdout is not None
        banner = emulator.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner
        # When the local run is pointed at it as at any fal-compatible queue
        run = kontext(
            "local",
            "--image",
            SAMPLE,
            "--prompt",
            "make it snow",
            "--out",
            str(tmp_path),
            "--parameter-overrides",
            f"FalBaseUrl=http://127.0.0.1:{port}",
            "--json",
        )
    finally:
        emulator.send_signal(signal.SIGINT)
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait(timeout=10)
    # Then the job ran through it
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == "SUCCEEDED"


@pytest.fixture
def callback_receiver(httpserver: HTTPServer) -> HTTPServer:
    """A team's receiver at /hooks/kontext. It answers 503 to the first try of each delivery
    (by webhook-id), so a run that stops as soon as its job is done never sees the retry."""

    def first_try_refused(request: Request) -> Response:
        webhook_id = request.headers.get("webhook-id")
        tried = any(
            earlier.headers.get("webhook-id") == webhook_id for earlier, _ in httpserver.log
        )
        return Response(status=200 if tried else 503)

    httpserver.expect_request("/hooks/kontext", method="POST").respond_with_handler(
        first_try_refused
    )
    return httpserver


def callback_run(out: Path, receiver_url: str, *extra: str) -> dict[str, Any]:
    """`local` with the receiver as the upload's callback-url; its JSON document."""
    run = kontext(
        "local",
        "--image",
        SAMPLE,
        "--prompt",
        "Put a donut next to the flour.",
        "--metadata",
        f"callback-url={receiver_url}/hooks/kontext",
        "--parameter-overrides",
        "CallbackUrlHosts=localhost",
        "--out",
        str(out),
        "--json",
        *FAST,
        *extra,
    )
    assert run.returncode == 0, run.stderr
    assert "cuts short" not in run.stderr
    document: dict[str, Any] = json.loads(run.stdout)
    return document


def verified_deliveries(receiver: HTTPServer, secret: str) -> list[dict[str, Any]]:
    """The deliveries the standardwebhooks library accepts with the secret."""
    return [Webhook(secret).verify(body, headers) for headers, body in received(receiver)]


def test_a_single_image_run_waits_for_its_callback_and_signs_with_the_given_secret(
    tmp_path: Path, callback_receiver: HTTPServer
) -> None:
    # Given a receiver set up beforehand with its own Standard Webhooks secret
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    # When one image runs with that secret and the receiver as its callback-url
    receiver_url = base_url_of(callback_receiver)
    document = callback_run(tmp_path / "out", receiver_url, "--callback-secret", secret)
    # Then the run stopped only after the retry of the 503: two deliveries, one webhook-id,
    # both verified with the receiver's own secret
    payloads = verified_deliveries(callback_receiver, secret)
    assert len(payloads) == 2
    assert len({headers["webhook-id"] for headers, _ in received(callback_receiver)}) == 1
    assert payloads[0]["status"] == document["status"] == "SUCCEEDED"
    assert document["callback_secret"] == secret


def test_a_run_without_a_secret_tells_the_receiver_the_one_it_signs_with(
    tmp_path: Path, callback_receiver: HTTPServer
) -> None:
    # Given a receiver that does not know the secret yet
    # When one image runs without --callback-secret
    document = callback_run(tmp_path / "out", base_url_of(callback_receiver))
    # Then the JSON document names the secret, and it verifies what the receiver got
    secret = document["callback_secret"]
    assert secret.startswith("whsec_")
    payloads = verified_deliveries(callback_receiver, secret)
    assert [payload["request_id"] for payload in payloads] == [document["request_id"]] * 2


def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused(tmp_path: Path) -> None:
    # Given a secret that is not base64 / When a run is asked to sign with it
    run = kontext(
        "local",
        "--image",
        SAMPLE,
        "--prompt",
        "x",
        "--out",
        str(tmp_path),
        "--callback-secret",
        "whsec_not base64!",
        *FAST,
    )
    # Then it stops before any upload, with one line naming the option
    assert run.returncode == 2
    assert "--callback-secret: the callback signing secret is not base64" in run.stderr
