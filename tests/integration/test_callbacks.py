"""Per-job callbacks through the local run: the job's outcome event -> a signed POST to the
upload's callback-url, verified with the `standardwebhooks` library, retried after a 503;
forbidden URLs never receive a request."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from kontext_tools.cli import main
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image
from tests.integration.conftest import FAST_MODEL


class Receiver:
    """A team's service: verifies each delivery, answers 503 to the first try of each."""

    secret: ClassVar[str] = ""
    deliveries: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()

    @classmethod
    def answer(cls, request: Request) -> Response:
        body, headers = request.get_data(), dict(request.headers.items())
        try:
            payload = Webhook(cls.secret).verify(body, headers)
            verified = True
        except Exception:
            payload, verified = None, False
        with cls.lock:
            webhook_id = request.headers.get("webhook-id")
            first_try = not any(d["id"] == webhook_id for d in cls.deliveries)
            status = 503 if first_try else (200 if verified else 401)
            cls.deliveries.append(
                {
                    "id": webhook_id,
                    "key": json.loads(body)["source"]["key"],
                    "verified": verified,
                    "payload": payload,
                    "status": status,
                }
            )
        return Response(status=status)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    parameters = {
        "CallbackUrlHosts": "localhost,hooks.example.com",
    }
    with LocalPipeline(emulator_timing=FAST_MODEL, parameters=parameters) as running:
        yield running


@pytest.fixture(scope="module")
def receiver_server(pipeline: LocalPipeline) -> Iterator[HTTPServer]:
    """The receiver on 127.0.0.1 (pytest-httpserver), verifying with the stack's secret."""
    secret = pipeline.clients.secretsmanager.get_secret_value(
        SecretId=pipeline.outputs["CallbackSigningSecretArn"]
    )["SecretString"]
    Receiver.secret = "whsec_" + secret
    with HTTPServer(host="127.0.0.1", port=0) as server:
        server.expect_request(re.compile("/.*"), method="POST").respond_with_handler(
            Receiver.answer
        )
        yield server


@pytest.fixture(scope="module")
def receiver(receiver_server: HTTPServer) -> int:
    """The receiver's port."""
    return int(receiver_server.port)


@pytest.fixture(scope="module")
def refusals(pipeline: LocalPipeline) -> str:
    """A queue on the pipeline's bus that collects `Kontext Callback Refused` events."""
    sqs, events = pipeline.clients.sqs, pipeline.clients.events
    bus = pipeline.outputs["JobEventsBusName"]
    queue = sqs.create_queue(QueueName="callback-refusals")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="callback-refusals",
        EventBusName=bus,
        EventPattern=json.dumps(
            {"source": ["kontext-pipeline"], "detail-type": ["Kontext Callback Refused"]}
        ),
    )
    targets = [{"Id": "queue", "Arn": arn}]
    events.put_targets(Rule="callback-refusals", EventBusName=bus, Targets=targets)
    return str(queue)


def deliveries_for(key: str) -> list[dict[str, Any]]:
    with Receiver.lock:
        return [d for d in Receiver.deliveries if d["key"] == key]


def refusal_note_for(pipeline: LocalPipeline, refusals: str, key: str) -> dict[str, Any]:
    """The one `Kontext Callback Refused` detail naming the upload `key`, once it came."""
    sqs = pipeline.clients.sqs
    notes: list[dict[str, Any]] = []

    def refused() -> bool:
        for message in sqs.receive_message(QueueUrl=refusals, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            notes.append(json.loads(message["Body"])["detail"])
            sqs.delete_message(QueueUrl=refusals, ReceiptHandle=message["ReceiptHandle"])
        return any(note["source"]["key"] == key for note in notes)

    wait_until(refused)
    [note] = [note for note in notes if note["source"]["key"] == key]
    return note


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_a_job_calls_back_once_signed_and_retried_after_a_503(
    pipeline: LocalPipeline, receiver: int
) -> None:
    # Given an upload whose metadata names a receiver that answers 503 to a first try
    url = f"http://127.0.0.1:{receiver}/kontext?team=a"
    source = pipeline.upload(make_image(), prompt="make it snow", metadata={"callback-url": url})
    # When its job ends
    notification = pipeline.wait_for_notification(source).notification
    assert notification.status == "SUCCEEDED"
    wait_until(lambda: any(d["status"] == 200 for d in deliveries_for(source.key)))
    time.sleep(2)  # room for a stray second delivery to show up
    # Then the receiver verified every attempt with standardwebhooks, under one webhook-id
    deliveries = deliveries_for(source.key)
    assert [d["status"] for d in deliveries] == [503, 200]
    assert all(d["verified"] for d in deliveries)
    assert len({d["id"] for d in deliveries}) == 1
    # And the body is the job's notification
    assert deliveries[-1]["payload"]["request_id"] == notification.request_id
    assert deliveries[-1]["payload"]["outputs"][0]["s3_uri"] == notification.outputs[0].s3_uri


def called_back_job(pipeline: LocalPipeline, receiver: int, team: str) -> Any:
    """An upload whose callback-url names the receiver, its job done and called back: its
    source, its notification, and how many deliveries it has had."""
    url = f"http://127.0.0.1:{receiver}/kontext?team={team}"
    source = pipeline.upload(make_image(), prompt="make it hail", metadata={"callback-url": url})
    notification = pipeline.wait_for_notification(source).notification
    wait_until(lambda: any(d["status"] == 200 for d in deliveries_for(source.key)))
    return source, notification, len(deliveries_for(source.key))


def put_forged_job_ended(pipeline: LocalPipeline, notification: Any, **bus: str) -> None:
    """A "job succeeded" event for the notification's upload, with outputs of elsewhere."""
    forged = notification.model_dump(mode="json") | {"outputs": [{"s3_uri": "s3://evil/x.png"}]}
    entry = {
        "Source": "kontext-pipeline",
        "DetailType": "Kontext Edit Succeeded",
        "Detail": json.dumps(forged),
    }
    pipeline.clients.events.put_events(Entries=[entry | bus])


def test_a_job_ended_event_forged_on_the_default_bus_gets_no_signed_callback(
    pipeline: LocalPipeline, receiver: int
) -> None:
    # Given an upload whose callback-url names the receiver, and its real job done
    source, notification, delivered = called_back_job(pipeline, receiver, "forged")
    # When anyone in the account puts a "job succeeded" event naming that upload on the
    # default bus, where EventBridge does not check who sets `source`
    put_forged_job_ended(pipeline, notification)
    pipeline.settle(timeout=30)
    time.sleep(1)
    # Then no signed callback carries it: only the pipeline's own bus reaches DeliverCallback
    assert len(deliveries_for(source.key)) == delivered


def test_a_job_event_that_is_not_how_the_job_ended_gets_no_signed_callback(
    pipeline: LocalPipeline, receiver: int, refusals: str
) -> None:
    # Given an upload whose callback-url names the receiver, and its real job done
    source, notification, delivered = called_back_job(pipeline, receiver, "tampered")
    # When a "job succeeded" event naming that upload with other outputs reaches the
    # pipeline's own bus (moto does not evaluate the bus policy that keeps others off it)
    put_forged_job_ended(pipeline, notification, EventBusName=pipeline.outputs["JobEventsBusName"])
    # Then the refusal says the event is not how the job ended, and nothing more was signed
    note = refusal_note_for(pipeline, refusals, source.key)
    assert "does not match how the job" in note["callback"]["message"]
    pipeline.settle(timeout=30)
    assert len(deliveries_for(source.key)) == delivered


def test_a_failed_job_calls_back_too(pipeline: LocalPipeline, receiver: int) -> None:
    # Given an upload with no prompt, so its job fails before the model
    url = f"http://127.0.0.1:{receiver}/kontext"
    source = pipeline.upload(make_image(), metadata={"callback-url": url})
    # When its job ends
    assert pipeline.wait_for_notification(source).notification.status == "FAILED"
    # Then the failure is delivered, signed
    wait_until(lambda: any(d["status"] == 200 for d in deliveries_for(source.key)))
    delivered = [d for d in deliveries_for(source.key) if d["status"] == 200]
    assert delivered[0]["verified"]
    assert delivered[0]["payload"]["failure"]["reason"] == "missing_prompt"


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("http://localhost:{port}/h", "https only"),
        ("https://[::ffff:127.0.0.1]:{port}/h", "is an IP address"),
        # On 443: a listed host on another port is refused before its name is resolved.
        ("https://localhost/h", "private, loopback"),
        ("https://hooks.example.org:{port}/h", "not in CallbackUrlHosts"),
    ],
)
def test_forbidden_callback_urls_never_receive_a_request(
    pipeline: LocalPipeline, receiver_server: HTTPServer, refusals: str, template: str, why: str
) -> None:
    # Given an upload whose callback-url breaks a rule (each would reach the receiver)
    requests_before = len(receiver_server.log)
    url = template.format(port=receiver_server.port)
    source = pipeline.upload(make_image(), prompt="make it rain", metadata={"callback-url": url})
    # When its job ends
    assert pipeline.wait_for_notification(source).notification.status == "SUCCEEDED"
    # Then a refusal note is put on the bus, saying which rule
    note = refusal_note_for(pipeline, refusals, source.key)
    assert note["callback"]["reason"] == "callback_refused"
    assert why in note["callback"]["message"]
    assert note["status"] == "SUCCEEDED"
    # And the receiver was never asked
    assert len(receiver_server.log) == requests_before


def test_the_command_line_shows_the_secret_and_passes_metadata(
    pipeline: LocalPipeline, receiver: int, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    # Given the deployed stack
    stack = pipeline.stack.name  # type: ignore[union-attr]
    # When the command line shows the signing secret
    assert main(["callback-secret", "--stack", stack]) == 0
    # Then it is the one receivers verify with
    assert capsys.readouterr().out.strip() == Receiver.secret
    # When an image is edited with a callback-url through --metadata
    image = tmp_path / "cli.png"
    image.write_bytes(make_image())
    url = f"http://127.0.0.1:{receiver}/cli"
    code = main(
        [
            "edit",
            str(image),
            "--prompt",
            "make it night",
            "--stack",
            stack,
            "--key",
            "inputs/cli-callback.png",
            "--metadata",
            f"callback-url={url}",
            "--json",
        ]
    )
    # Then the job calls back
    assert code == 0, capsys.readouterr().err
    wait_until(lambda: any(d["status"] == 200 for d in deliveries_for("inputs/cli-callback.png")))
