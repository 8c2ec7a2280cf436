"""The model's outputs into S3, on moto, served over loopback the way a CDN would: streamed
in with type, checksum and lineage; broken, oversized or off-list outputs refused; redirects
checked hop by hop."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, ClassVar

import httpx
import pytest
from kontext_pipeline.core.errors import OutputCopyError, OutputFetchTransientError
from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.storage.output_copy import OutputPlace, copy_output, output_folder
from kontext_pipeline.storage.output_origins import OutputPolicy
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import base_url_of, make_image

BUCKET = "kontext-images-test"
ANY_PATH = re.compile("/.*")
POLICY = OutputPolicy(allowed_hosts=("127.0.0.1",), allow_http=True, max_bytes=5_000_000)


class _Files:
    """A few canned answers the way a CDN gives them, including broken ones."""

    routes: ClassVar[dict[str, tuple[int, str, bytes, int | None]]] = {}
    redirects: ClassVar[dict[str, str]] = {}

    @classmethod
    def answer(cls, request: Request) -> Response:
        if request.path in cls.redirects:
            location = cls.redirects[request.path]
            return Response(status=302, headers={"Location": location}, content_type="text/html")
        status, content_type, body, declared = cls.routes[request.path]
        response = Response(body, status, content_type=content_type)
        if declared is not None:  # a body cut short of what its headers promise
            response.headers["Content-Length"] = str(declared)
        return response


@pytest.fixture
def cdn(httpserver: HTTPServer) -> str:
    png = make_image("PNG", (80, 60))
    _Files.routes = {
        "/ok.png": (200, "image/png", png, None),
        "/expired.png": (403, "text/plain", b"AccessDenied", None),
        "/page.png": (200, "text/html", b"<html>login</html>", None),
        "/lying.png": (200, "image/png", b"<html>not really</html>", None),
        "/truncated.png": (200, "image/png", png[:100], len(png)),
        "/busy.png": (503, "text/plain", b"busy", None),
    }
    _Files.redirects = {}
    httpserver.expect_request(ANY_PATH).respond_with_handler(_Files.answer)
    return base_url_of(httpserver)


def paths_asked(server: HTTPServer) -> list[str]:
    return [request.path for request, _ in server.log]


@pytest.fixture
def s3(aws: Any) -> Any:
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def copy(s3: Any, url: str, policy: OutputPolicy = POLICY) -> Any:
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as http:
        lineage = {"source-key": "inputs/café.png", "prompt": "x" * 3000}
        place = OutputPlace(bucket=BUCKET, key_stem="outputs/a/req/0", lineage=lineage)
        return copy_output(s3, http, url, place, policy)


def test_an_output_is_streamed_in_with_type_checksum_and_lineage(s3: Any, cdn: str) -> None:
    # Given a PNG on the CDN, and lineage with a non-ASCII key and an overlong prompt
    # When it is copied
    stored = copy(s3, f"{cdn}/ok.png")
    # Then it lands typed, with its checksum, and with lineage S3 can hold
    head = s3.head_object(Bucket=BUCKET, Key=stored.key)
    body = s3.get_object(Bucket=BUCKET, Key=stored.key)["Body"].read()
    assert stored.key == "outputs/a/req/0.png"
    assert head["ContentType"] == "image/png"
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert head["Metadata"]["source-key"] == "inputs/caf%C3%A9.png"
    assert len(head["Metadata"]["prompt"]) <= 512


def test_a_data_uri_output_is_stored(s3: Any) -> None:
    # Given a JPEG output as a data: URI (sync mode)
    jpeg = make_image("JPEG")
    # When it is copied / Then it is stored whole, named .jpg
    stored = copy(s3, "data:image/jpeg;base64," + base64.b64encode(jpeg).decode())
    assert (stored.key, stored.size) == ("outputs/a/req/0.jpg", len(jpeg))


@pytest.mark.parametrize(
    ("path", "error", "reason"),
    [
        ("/expired.png", OutputCopyError, "output_unavailable"),
        ("/page.png", OutputCopyError, "output_not_an_image"),
        ("/lying.png", OutputCopyError, "output_not_an_image"),
        ("/truncated.png", OutputFetchTransientError, "output_fetch_transient"),
        ("/busy.png", OutputFetchTransientError, "output_fetch_transient"),
    ],
)
def test_broken_outputs_are_refused_and_nothing_half_written(
    s3: Any, cdn: str, path: str, error: type[Exception], reason: str
) -> None:
    # Given an output the CDN answers badly (forbidden, not an image, truncated, busy)
    # When it is copied / Then it fails with its reason, and nothing final is half written
    with pytest.raises(error) as caught:
        copy(s3, cdn + path)
    assert getattr(caught.value, "reason", None) == reason
    if reason != "output_fetch_transient":
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_an_output_over_the_limit_is_refused(s3: Any, cdn: str) -> None:
    # Given a policy allowing 50 bytes / When a larger output is copied / Then it is refused
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, f"{cdn}/ok.png", OutputPolicy(("127.0.0.1",), True, max_bytes=50))
    assert caught.value.reason == "output_too_large"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://evil.example.com/x.png",
        "file:///etc/passwd",
        "https://fal.media.evil.com/x.png",
    ],
)
def test_outputs_only_come_from_allowed_hosts(s3: Any, url: str) -> None:
    # Given a policy allowing https on fal.media only
    # When an output URL elsewhere is copied / Then it is refused before any request
    policy = OutputPolicy(allowed_hosts=("fal.media",), allow_http=False, max_bytes=10)
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, url, policy)
    assert caught.value.reason == "output_url_refused"


def test_a_host_with_a_trailing_dot_is_checked_as_the_same_host() -> None:
    # Given a policy allowing https on fal.media and on google.internal
    policy = OutputPolicy(("fal.media", "google.internal"), allow_http=False, max_bytes=10)
    # When a listed host is written with a trailing dot / Then it is accepted as listed
    policy.check_url("https://v3.fal.media./files/x.png")
    # And an internal name under a listed host is refused, with or without the dot
    for url in ("https://metadata.google.internal/x", "https://metadata.google.internal./x"):
        with pytest.raises(OutputCopyError) as caught:
            policy.check_url(url)
        assert "is an internal address" in caught.value.message


def test_output_folder_is_traceable_to_the_input() -> None:
    # Given an input key with folders and dots
    source = SourceObject(bucket=BUCKET, key="inputs/trips/rome.v2.jpg")
    # When its output folder is named / Then it keeps the path, without the extension
    assert (
        output_folder(source, input_prefix="inputs/", output_prefix="outputs/", job="req-1")
        == "outputs/trips/rome.v2/req-1/"
    )


# --- redirects, the queue's own origin, inline inputs (issue 11, issue 10 item 8) ----------


def test_a_redirect_within_the_allowed_hosts_is_followed(
    s3: Any, cdn: str, httpserver: HTTPServer
) -> None:
    # Given an output URL that redirects twice, on the allowed host
    _Files.redirects = {"/moved.png": f"{cdn}/moved-again.png", "/moved-again.png": "/ok.png"}
    # When copied / Then the image at the end of the chain is stored
    stored = copy(s3, f"{cdn}/moved.png")
    assert stored.content_type == "image/png"
    assert paths_asked(httpserver) == ["/moved.png", "/moved-again.png", "/ok.png"]


def test_a_redirect_off_the_allowlist_is_refused_before_it_is_followed(
    s3: Any, cdn: str, httpserver: HTTPServer
) -> None:
    # Given an output URL on an allowed host that redirects to another host (localhost),
    # to a signed URL
    port = cdn.rsplit(":", 1)[1]
    _Files.redirects = {"/away.png": f"http://localhost:{port}/ok.png?signature=secret"}
    # When copied / Then it is refused as output_url_refused, the target never asked, and
    # the message names the target without its signature
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, f"{cdn}/away.png")
    assert caught.value.reason == "output_url_refused"
    assert f"redirected to http://localhost:{port}/ok.png:" in caught.value.message
    assert "secret" not in caught.value.message
    assert paths_asked(httpserver) == ["/away.png"]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_redirects_are_bounded(s3: Any, cdn: str, httpserver: HTTPServer) -> None:
    # Given an output URL that redirects to itself forever
    _Files.redirects = {"/loop.png": "/loop.png"}
    # When copied / Then it stops after a few hops, refused
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, f"{cdn}/loop.png")
    assert caught.value.reason == "output_url_refused"
    assert len(httpserver.log) == 4  # the URL and three redirects


def test_files_on_the_queues_own_origin_are_accepted_without_a_host_entry(
    s3: Any, cdn: str
) -> None:
    # Given FAL_BASE_URL pointing at a fal-compatible queue on this origin, and an
    # allowlist that does not name its host
    policy = OutputPolicy.for_queue(
        cdn, allowed_hosts=("fal.media",), allow_http=False, max_bytes=5_000_000
    )
    # When an output on the queue's origin is copied / Then it is accepted (the queue is
    # trusted with the key already)
    assert copy(s3, f"{cdn}/ok.png", policy).content_type == "image/png"
    # And the same host on another port, or another scheme, still needs OutputUrlHosts
    port = int(cdn.rsplit(":", 1)[1])
    for other in (f"http://127.0.0.1:{port + 1}/ok.png", f"https://127.0.0.1:{port}/ok.png"):
        with pytest.raises(OutputCopyError) as caught:
            copy(s3, other, policy)
        assert caught.value.reason == "output_url_refused"


class _Compressing:
    """A host that gzips whatever it is asked, whatever the Accept-Encoding said."""

    bodies: ClassVar[dict[str, bytes]] = {}

    @classmethod
    def answer(cls, request: Request) -> Response:
        headers = {"Content-Encoding": "gzip"}
        return Response(cls.bodies[request.path], content_type="image/png", headers=headers)


def gzipped(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=9)


def peak_memory_of(action: Any) -> tuple[int, BaseException | None]:
    """Python's peak allocation while `action` runs, and what it raised."""
    import tracemalloc

    tracemalloc.start()
    raised = None
    try:
        action()
    except Exception as exc:
        raised = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, raised


def test_a_compressed_output_is_inflated_bounded_and_counted_as_inflated(
    s3: Any, httpserver: HTTPServer
) -> None:
    # Given a host that gzips: an image, and a bomb (a PNG header and 200 MB of zeros, about
    # 200 KB on the wire), with a limit of 20 MB
    png = make_image("PNG", (80, 60))
    bomb = png[:64] + bytes(200 * 1024 * 1024)
    _Compressing.bodies = {"/ok.png": gzipped(png), "/bomb.png": gzipped(bomb)}
    policy = OutputPolicy(("127.0.0.1",), True, max_bytes=20 * 1024 * 1024)
    plain = bytes(19 * 1024 * 1024)
    httpserver.expect_request(ANY_PATH).respond_with_handler(_Compressing.answer)
    host = base_url_of(httpserver)
    # When the image is copied / Then what lands is the image itself, not its gzip
    stored = copy(s3, f"{host}/ok.png", policy)
    assert s3.get_object(Bucket=BUCKET, Key=stored.key)["Body"].read() == png
    assert stored.size == len(png)
    # And the copy asked for the bytes as they are
    assert [request.headers.get("Accept-Encoding") for request, _ in httpserver.log] == ["identity"]
    # When the bomb is copied
    _Compressing.bodies["/plain.png"] = gzipped(png[:64] + plain)
    usual, _ = peak_memory_of(lambda: copy(s3, f"{host}/plain.png", policy))
    peak, raised = peak_memory_of(lambda: copy(s3, f"{host}/bomb.png", policy))
    # Then it stops at the limit, counted on the inflated bytes, as output_too_large
    assert isinstance(raised, OutputCopyError), raised
    assert raised.reason == "output_too_large"
    # And memory stays within what a copy just under the limit takes (before: 314 MB)
    assert peak <= usual * 1.5, (peak, usual)
