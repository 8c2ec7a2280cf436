"""Per-job callbacks: which URLs are refused, the Standard Webhooks signature, retries."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from functools import partial
from typing import Any

import boto3
import httpx
import pytest
from kontext_pipeline.core.errors import CallbackDeliveryError, CallbackRefusedError
from kontext_pipeline.core.notification import Notification
from kontext_pipeline.jobs.published import record_outcome
from kontext_pipeline.notifications.callbacks import (
    CallbackRules,
    CallbackTarget,
    RetryBudget,
    callback_url_from_metadata,
    check_callback_url,
    displayed_secret,
    post_signed_notification,
    signing_key,
    webhook_id_for,
)
from kontext_pipeline.steps.deliver_callback import DeliverCallbackDeps
from kontext_pipeline.steps.deliver_callback import run as deliver_job_callback
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from tests.conftest import JOBS_TABLE, base_url_of, load_event, received

RULES = CallbackRules(allowed_hosts=("hooks.example.com",))
SECRET = displayed_secret(base64.b64encode(b"k" * 32).decode())
NOTIFICATION = {
    "version": "1",
    "status": "SUCCEEDED",
    "source": {"bucket": "b", "key": "inputs/a.png", "version_id": "v1"},
    "request_id": "req-1",
    "prompt": "Ajoute un café ☕",
}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/k", True),
        ("https://hooks.example.com:443/k", True),
        ("https://hooks.example.com:22/k", False),
        ("https://hooks.example.com:8443/k", False),
    ],
)
def test_a_listed_host_takes_port_443_only(url: str, allowed: bool) -> None:
    # Given a host listed without a port / When a URL on another port is checked
    check = partial(check_callback_url, url, RULES, resolve=resolver("93.184.216.34"))
    # Then only 443 passes (an allowlisted host's SSH or admin port is not a receiver)
    if allowed:
        assert check().address == "93.184.216.34"
    else:
        with pytest.raises(CallbackRefusedError, match="is not in CallbackUrlHosts"):
            check()


def test_a_host_listed_with_a_port_takes_that_port_only() -> None:
    rules = CallbackRules(allowed_hosts=("hooks.example.com:8443",))
    public = resolver("93.184.216.34")
    # Given a host listed as host:port / When URLs on that port and on 443 are checked
    assert check_callback_url("https://hooks.example.com:8443/k", rules, resolve=public)
    # Then the listed port passes, 443 does not
    with pytest.raises(CallbackRefusedError, match=r"hooks\.example\.com is not in"):
        check_callback_url("https://hooks.example.com/k", rules, resolve=public)


@pytest.mark.parametrize(
    "answers", [("2600:1f18:abcd::1", "34.200.1.1"), ("34.200.1.1", "2600:1f18:abcd::1")]
)
def test_a_dual_stack_receiver_is_called_over_ipv4(answers: tuple[str, str]) -> None:
    # Given a receiver whose name resolves to IPv6 and IPv4, in either order
    # When it is checked for a function without IPv6 egress (Lambda outside a dual-stack VPC)
    target = check_callback_url("https://hooks.example.com/k", RULES, resolve=resolver(*answers))
    # Then the request goes to the IPv4 address
    assert target.address == "34.200.1.1"
    assert target.pinned_url() == "https://34.200.1.1/k"


def test_an_ipv6_only_receiver_needs_ipv6_egress() -> None:
    ipv6_only = resolver("2600:1f18:abcd::1")
    url = "https://hooks.example.com/k"
    # Given a receiver with IPv6 addresses only
    # When the function has no IPv6 egress / Then it is refused, saying why
    with pytest.raises(CallbackRefusedError, match="no IPv6 egress"):
        check_callback_url(url, RULES, resolve=ipv6_only)
    # And with IPv6 egress (a dual-stack VPC) it is called over IPv6
    dual_stack = CallbackRules(allowed_hosts=RULES.allowed_hosts, ipv6_egress=True)
    target = check_callback_url(url, dual_stack, resolve=ipv6_only)
    assert target.pinned_url() == "https://[2600:1f18:abcd::1]/k"


def resolver(*answers: str) -> Any:
    def resolve(host: str, port: int) -> Sequence[str]:
        return list(answers)

    return resolve


def test_an_https_url_on_a_listed_host_with_public_addresses_is_accepted() -> None:
    # Given a host listed with its port, that resolves to a public address
    url = "https://api.hooks.example.com:8443/kontext?team=a"
    rules = CallbackRules(allowed_hosts=("hooks.example.com:8443",))
    # When it is checked
    target = check_callback_url(url, rules, resolve=resolver("93.184.216.34"))
    # Then the request goes to that address, with the port and path kept
    assert target.address == "93.184.216.34"
    assert target.pinned_url() == "https://93.184.216.34:8443/kontext?team=a"


def test_a_listed_host_with_a_trailing_dot_is_the_same_listed_host() -> None:
    # Given a listed host written with a trailing dot, resolving to a public address
    url = "https://hooks.example.com./kontext"
    # When it is checked
    target = check_callback_url(url, RULES, resolve=resolver("93.184.216.34"))
    # Then it is accepted, at that address
    assert target.address == "93.184.216.34"


@pytest.mark.parametrize(
    ("url", "answers", "why"),
    [
        ("http://hooks.example.com/x", ["93.184.216.34"], "https only"),
        ("ftp://hooks.example.com/x", ["93.184.216.34"], "https only"),
        ("https://203.0.113.9/x", [], "is an IP address"),
        ("https://[::ffff:127.0.0.1]/x", [], "is an IP address"),
        ("https://evil.example.org/x", ["93.184.216.34"], "not in CallbackUrlHosts"),
        ("https://hooks.example.com.evil.org/x", ["93.184.216.34"], "not in CallbackUrlHosts"),
        ("https://hooks.example.com/x", ["10.0.0.7"], "private, loopback"),
        ("https://hooks.example.com/x", ["127.0.0.1"], "private, loopback"),
        ("https://hooks.example.com/x", ["169.254.169.254"], "private, loopback"),
        ("https://hooks.example.com/x", ["93.184.216.34", "192.168.1.2"], "private, loopback"),
        ("https://hooks.example.com/x", ["::ffff:10.0.0.1"], "private, loopback"),
        ("https://hooks.example.com/x", ["fd00::1"], "private, loopback"),
        ("https://user:pw@hooks.example.com/x", ["93.184.216.34"], "user info"),
        ("https://hooks.example.com/x", [], "does not resolve"),
    ],
)
def test_forbidden_urls_are_refused_with_the_rule_they_break(
    url: str, answers: list[str], why: str
) -> None:
    # Given a URL that breaks one rule
    # When it is checked
    with pytest.raises(CallbackRefusedError) as refused:
        check_callback_url(url, RULES, resolve=resolver(*answers))
    # Then it is refused, saying which
    assert refused.value.reason == "callback_refused"
    assert why in refused.value.message


def test_loopback_literals_pass_only_where_the_local_run_allows_them() -> None:
    # Given a receiver on 127.0.0.1 over plain HTTP
    url = "http://127.0.0.1:8080/hook"
    # When the deployed rules check it, it is refused
    with pytest.raises(CallbackRefusedError):
        check_callback_url(url, RULES, resolve=resolver())
    # Then the local run's rules let it through, but not a name or a mapped form of it
    local = CallbackRules(allowed_hosts=("localhost",), allow_loopback=True)
    assert check_callback_url(url, local, resolve=resolver()).address == "127.0.0.1"
    with pytest.raises(CallbackRefusedError):
        check_callback_url("http://localhost:8080/hook", local, resolve=resolver("127.0.0.1"))
    with pytest.raises(CallbackRefusedError):
        check_callback_url("https://[::ffff:127.0.0.1]:8080/", local, resolve=resolver())


def test_the_callback_url_is_read_from_metadata_in_any_spelling() -> None:
    # Given metadata spelling the field in several ways, or not at all
    # When the callback URL is read / Then every spelling finds it, trimmed
    assert callback_url_from_metadata({"Callback-URL": "https://a/b"}) == "https://a/b"
    assert callback_url_from_metadata({"callback_url": " https://a/c "}) == "https://a/c"
    assert callback_url_from_metadata({"prompt": "x"}) is None


@pytest.fixture
def receiver(httpserver: HTTPServer) -> HTTPServer:
    """A receiver on 127.0.0.1 that answers 200 at /hook (pytest-httpserver logs each request)."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("")
    return httpserver


def failing_first(receiver: HTTPServer, times: int, status: int = 503) -> None:
    """The receiver answers `status` to its next `times` requests, before its 200s."""
    for _ in range(times):
        receiver.expect_oneshot_request("/hook", method="POST").respond_with_data("", status)


def target_for(base: str) -> CallbackTarget:
    local = CallbackRules(allowed_hosts=(), allow_loopback=True)
    return check_callback_url(base + "/hook", local)


def test_a_delivery_is_signed_so_standardwebhooks_verifies_it_and_retried_after_a_503(
    receiver: HTTPServer,
) -> None:
    # Given a receiver that answers 503 once
    failing_first(receiver, 1)
    slept: list[float] = []
    # When the notification is delivered
    with httpx.Client(timeout=5) as http:
        outcome = post_signed_notification(
            http,
            target_for(base_url_of(receiver)),
            NOTIFICATION,
            key=signing_key(SECRET),
            budget=RetryBudget(sleep=slept.append),
        )
    # Then it arrived on the second attempt, after one backoff
    assert (outcome.outcome, outcome.status_code, outcome.attempts) == ("delivered", 200, 2)
    assert len(slept) == 1
    # And both attempts carry the same webhook-id, each verifying with the library
    ids = set()
    for headers, body in received(receiver):
        assert Webhook(SECRET).verify(body, headers) == NOTIFICATION
        ids.add(headers["webhook-id"])
    assert ids == {webhook_id_for(NOTIFICATION)}
    # And a signature made with another secret does not verify
    other = displayed_secret(base64.b64encode(b"x" * 32).decode())
    headers, body = received(receiver)[-1]
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(body, headers)


def test_a_receiver_that_keeps_failing_exhausts_the_bounded_budget(
    receiver: HTTPServer,
) -> None:
    # Given a receiver that always answers 503
    failing_first(receiver, 99)
    # When the notification is delivered with three attempts
    with httpx.Client(timeout=5) as http, pytest.raises(CallbackDeliveryError) as failed:
        post_signed_notification(
            http,
            target_for(base_url_of(receiver)),
            NOTIFICATION,
            key=signing_key(SECRET),
            budget=RetryBudget(max_attempts=3, sleep=lambda _: None),
        )
    # Then exactly three requests were made and the error says so (the DLQ takes it next)
    assert len(receiver.log) == 3
    assert "after 3 attempts" in failed.value.message
    assert "HTTP 503" in failed.value.message


def test_a_4xx_is_the_receivers_refusal_and_is_not_retried(httpserver: HTTPServer) -> None:
    # Given a receiver that answers 410
    httpserver.expect_request("/hook", method="POST").respond_with_data("", 410)
    with httpx.Client(timeout=5) as http:
        # When the notification is delivered
        outcome = post_signed_notification(
            http,
            target_for(base_url_of(httpserver)),
            NOTIFICATION,
            key=signing_key(SECRET),
            budget=RetryBudget(sleep=lambda _: None),
        )
    # Then one request was made and the outcome says rejected
    assert (outcome.outcome, outcome.status_code, len(httpserver.log)) == ("rejected", 410, 1)


def test_the_webhook_id_is_one_per_job_outcome() -> None:
    # Given the same job's notification twice over, and its failure
    failed = {**NOTIFICATION, "status": "FAILED"}
    # When their webhook ids are made / Then one outcome has one id, another a different one
    assert webhook_id_for(NOTIFICATION) == webhook_id_for(json.loads(json.dumps(NOTIFICATION)))
    assert webhook_id_for(NOTIFICATION) != webhook_id_for(failed)
    assert webhook_id_for(NOTIFICATION).startswith("msg_")


def test_a_short_or_garbled_secret_is_refused() -> None:
    # Given a secret of 5 bytes, and one that is not base64
    # When each is made a signing key / Then each is refused, saying why
    with pytest.raises(Exception, match="shorter than 24 bytes"):
        signing_key("whsec_" + base64.b64encode(b"short").decode())
    with pytest.raises(Exception, match="not base64"):
        signing_key("whsec_***")


def self_signed(host: str, directory: Any) -> tuple[str, str]:
    """A certificate for `host` and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_the_request_goes_to_the_checked_address_with_tls_checked_against_the_name(
    tmp_path: Any,
) -> None:
    import ssl

    # Given an HTTPS receiver on 127.0.0.1 whose certificate names hooks.test, and a target
    # checked for hooks.test at that address
    cert, key = self_signed("hooks.test", tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with HTTPServer(host="127.0.0.1", port=0, ssl_context=server_tls) as tls_receiver:
        tls_receiver.expect_request("/hook", method="POST").respond_with_data("")
        port = tls_receiver.port
        target = CallbackTarget(
            url=f"https://hooks.test:{port}/hook", host="hooks.test", address="127.0.0.1"
        )
        trusting = ssl.create_default_context(cafile=cert)
        # When the notification is delivered (hooks.test resolves nowhere: only the pinned
        # address can be reached)
        with httpx.Client(verify=trusting) as http:
            outcome = post_signed_notification(http, target, NOTIFICATION, key=signing_key(SECRET))
        # Then TLS accepted the name on the pinned address, and Host names the host
        assert outcome.outcome == "delivered"
        assert received(tls_receiver)[-1][0]["host"] == f"hooks.test:{port}"
        # And a target whose name the certificate does not carry is never accepted
        wrong = CallbackTarget(
            url=f"https://other.test:{port}/", host="other.test", address="127.0.0.1"
        )
        with httpx.Client(verify=trusting) as http, pytest.raises(CallbackDeliveryError):
            post_signed_notification(
                http,
                wrong,
                NOTIFICATION,
                key=signing_key(SECRET),
                budget=RetryBudget(max_attempts=1),
            )


# --- from the job's outcome event to the receiver ----------------------------------------


@pytest.fixture
def outcome_bus(aws: Any, jobs_table: Any) -> tuple[Any, Any, Any, str]:
    """The images bucket, the jobs table, and a queue that collects `Kontext Callback Refused`
    events."""
    s3, events, sqs = aws.client("s3"), aws.client("events"), aws.client("sqs")
    s3.create_bucket(Bucket="kontext-images-example")
    queue = sqs.create_queue(QueueName="refusals")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="refusals",
        EventPattern=json.dumps({"detail-type": ["Kontext Callback Refused"]}),
    )
    events.put_targets(Rule="refusals", Targets=[{"Id": "q", "Arn": arn}])
    return s3, events, sqs, queue


def job_event_for(
    aws: Any, metadata: dict[str, str], *, ended: bool = True, version_id: str = "v1"
) -> dict[str, Any]:
    """The outcome event of a job whose upload carries `metadata`; recorded as its notifier
    records it, unless the job has not `ended`."""
    event = load_event("eventbridge_edit_succeeded")
    source = event["detail"]["source"]
    if version_id != "v1":
        source["version_id"] = version_id
    aws.client("s3").put_object(
        Bucket=source["bucket"], Key=source["key"], Body=b"image", Metadata=metadata
    )
    if ended:
        notification = Notification.model_validate(event["detail"])
        record_outcome(aws.client("dynamodb"), JOBS_TABLE, notification)
    return dict(event["detail"])


def run_callbacks(bus: tuple[Any, Any, Any, str], notification: Any, rules: CallbackRules) -> Any:
    s3, events, _, _ = bus
    # The jobs table of the same moto account (the outcome_bus fixture asks for it).
    dynamodb = boto3.Session(region_name=s3.meta.region_name).client("dynamodb")
    with httpx.Client(timeout=5) as http:
        deps = DeliverCallbackDeps(
            s3=s3,
            http=http,
            events=events,
            event_bus_name="default",
            dynamodb=dynamodb,
            jobs_table=JOBS_TABLE,
            rules=rules,
            signing_key_source=lambda: signing_key(SECRET),
        )
        return deliver_job_callback(notification, deps)


def test_a_finished_job_is_posted_to_its_uploads_callback_url(
    aws: Any, outcome_bus: tuple[Any, Any, Any, str], receiver: HTTPServer
) -> None:
    # Given the outcome event of a job whose upload names a receiver
    notification = job_event_for(aws, {"callback-url": base_url_of(receiver) + "/hook"})
    # When the callback runs
    report = run_callbacks(outcome_bus, notification, CallbackRules((), allow_loopback=True))
    # Then the receiver got the notification, signed
    assert (report.outcome, report.detail) == ("delivered", "HTTP 200")
    [(headers, body)] = received(receiver)
    assert Webhook(SECRET).verify(body, headers) == notification


def test_the_callback_url_of_an_upload_with_a_null_version_is_read(
    aws: Any, outcome_bus: tuple[Any, Any, Any, str], receiver: HTTPServer
) -> None:
    # Given the outcome event of a job whose upload was written while versioning was off
    url = base_url_of(receiver) + "/hook"
    notification = job_event_for(aws, {"callback-url": url}, version_id="null")
    # When the callback runs
    report = run_callbacks(outcome_bus, notification, CallbackRules((), allow_loopback=True))
    # Then the upload was read unpinned ("null" is no version id to send) and called back
    assert (report.outcome, report.detail) == ("delivered", "HTTP 200")


def test_a_refused_callback_url_is_noted_on_the_bus_and_never_requested(
    aws: Any, outcome_bus: tuple[Any, Any, Any, str], receiver: HTTPServer
) -> None:
    # Given an upload whose callback-url is plain http (deployed rules)
    notification = job_event_for(aws, {"callback-url": f"http://localhost:{receiver.port}/t?k=1"})
    # When the callback runs
    report = run_callbacks(outcome_bus, notification, CallbackRules(("localhost",)))
    # Then nothing was requested, and the note says why, without the URL's path or query
    assert report.outcome == "refused"
    assert receiver.log == []
    _, _, sqs, queue = outcome_bus
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    note = json.loads(message["Body"])["detail"]
    assert note["request_id"] == notification["request_id"]
    assert note["callback"]["reason"] == "callback_refused"
    assert "https only" in note["callback"]["message"]
    assert note["callback"]["url"] == "http://localhost/..."


@pytest.mark.parametrize(
    ("ended", "forged", "why"),
    [
        (False, {}, "has ended"),
        (True, {"outputs": [{"s3_uri": "s3://elsewhere/x.png"}]}, "does not match"),
        (True, {"status": "FAILED"}, "does not match"),
        (True, {"source": {"bucket": 7}}, "names no upload"),
    ],
)
def test_an_event_that_is_not_how_the_job_ended_gets_no_callback(
    aws: Any,
    outcome_bus: tuple[Any, Any, Any, str],
    receiver: HTTPServer,
    ended: bool,
    forged: dict[str, Any],
    why: str,
) -> None:
    # Given an upload naming a receiver, and an outcome event for it that the job never
    # published (no recorded end, or other outputs or status than the recorded ones)
    url = base_url_of(receiver) + "/hook"
    detail = job_event_for(aws, {"callback-url": url}, ended=ended) | forged
    # When the callback runs
    report = run_callbacks(outcome_bus, detail, CallbackRules((), allow_loopback=True))
    # Then nobody is called, and the refusal on the bus says why
    assert report.outcome == "refused"
    assert receiver.log == []
    _, _, sqs, queue = outcome_bus
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    note = json.loads(message["Body"])["detail"]["callback"]
    assert note["reason"] == "callback_refused"
    assert why in note["message"]


def test_an_upload_without_a_callback_url_calls_nobody(
    aws: Any, outcome_bus: tuple[Any, Any, Any, str], receiver: HTTPServer
) -> None:
    # Given an upload with a prompt but no callback-url
    notification = job_event_for(aws, {"prompt": "make it snow"})
    # When the callback runs
    report = run_callbacks(outcome_bus, notification, CallbackRules((), allow_loopback=True))
    # Then nobody is called
    assert report.outcome == "none"
    assert receiver.log == []


def test_a_passing_dns_failure_is_retried_not_refused() -> None:
    import socket

    # Given a resolver that fails for now (EAI_AGAIN), then one that says the name is unknown
    def for_now(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def unknown(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # When a URL is checked with each / Then the first may be retried, the second is refused
    with pytest.raises(CallbackDeliveryError):
        check_callback_url("https://hooks.example.com/x", RULES, resolve=for_now)
    with pytest.raises(CallbackRefusedError):
        check_callback_url("https://hooks.example.com/x", RULES, resolve=unknown)
