"""Input inspection and output copying, on moto S3, with outputs served over loopback."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest
from kontext_pipeline.errors import InvalidInputError, OutputCopyError, OutputFetchTransientError
from kontext_pipeline.inspection import (
    image_dimensions,
    inspect_source,
    sniff_image_type,
    source_as_data_uri,
)
from kontext_pipeline.models import SourceObject
from kontext_pipeline.output_sources import OutputPolicy
from kontext_pipeline.outputs import OutputPlace, copy_output, output_folder

from tests.conftest import loopback_server, make_image

BUCKET = "kontext-images-test"
POLICY = OutputPolicy(allowed_hosts=("127.0.0.1",), allow_http=True, max_bytes=5_000_000)


class _Files(BaseHTTPRequestHandler):
    """Serves a few canned answers the way a CDN would, including broken ones."""

    routes: ClassVar[dict[str, tuple[int, str, bytes, int | None]]] = {}
    redirects: ClassVar[dict[str, str]] = {}
    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Files.served.append(self.path)
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, content_type, body, declared = self.routes[self.path]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def cdn() -> Iterator[str]:
    png = make_image("PNG", (80, 60))
    _Files.routes = {
        "/ok.png": (200, "image/png", png, None),
        "/expired.png": (403, "text/plain", b"AccessDenied", None),
        "/page.png": (200, "text/html", b"<html>login</html>", None),
        "/lying.png": (200, "image/png", b"<html>not really</html>", None),
        "/truncated.png": (200, "image/png", png[:100], len(png)),
        "/busy.png": (503, "text/plain", b"busy", None),
    }
    _Files.redirects, _Files.served = {}, []
    with loopback_server(_Files) as base_url:
        yield base_url


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
    stored = copy(s3, f"{cdn}/ok.png")
    head = s3.head_object(Bucket=BUCKET, Key=stored.key)
    body = s3.get_object(Bucket=BUCKET, Key=stored.key)["Body"].read()
    assert stored.key == "outputs/a/req/0.png"
    assert head["ContentType"] == "image/png"
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert head["Metadata"]["source-key"] == "inputs/caf%C3%A9.png"
    assert len(head["Metadata"]["prompt"]) <= 512


def test_a_data_uri_output_is_stored(s3: Any) -> None:
    jpeg = make_image("JPEG")
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
    with pytest.raises(error) as caught:
        copy(s3, cdn + path)
    assert getattr(caught.value, "reason", None) == reason
    if reason != "output_fetch_transient":
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_an_output_over_the_limit_is_refused(s3: Any, cdn: str) -> None:
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
    policy = OutputPolicy(allowed_hosts=("fal.media",), allow_http=False, max_bytes=10)
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, url, policy)
    assert caught.value.reason == "output_url_refused"


def test_inspection_rejects_what_the_model_cannot_use(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="inputs/empty.png", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="inputs/text.png", Body=b"hello world, not an image")
    s3.put_object(Bucket=BUCKET, Key="inputs/big.png", Body=make_image())
    cases = {
        "inputs/empty.png": "empty_object",
        "inputs/text.png": "not_an_image",
        "inputs/big.png": "object_too_large",
        "inputs/gone.png": "object_not_found",
    }
    for key, reason in cases.items():
        with pytest.raises(InvalidInputError) as caught:
            inspect_source(
                s3, SourceObject(bucket=BUCKET, key=key), max_bytes=100, max_pixels=10_000
            )
        assert caught.value.reason == reason, key


def test_inspection_reads_metadata_and_pins_the_version(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(
        Bucket=BUCKET, Key="inputs/a.png", Body=make_image(), Metadata={"prompt": "hello"}
    )
    inspected = inspect_source(
        s3,
        SourceObject(bucket=BUCKET, key="inputs/a.png"),
        max_bytes=10_000_000,
        max_pixels=10_000,
    )
    assert inspected.metadata == {"prompt": "hello"}
    assert inspected.image_type == "image/png"
    assert inspected.source.version_id == put["VersionId"]


def test_an_image_with_too_many_pixels_is_refused(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="inputs/wide.png", Body=make_image(size=(200, 100)))
    with pytest.raises(InvalidInputError) as caught:
        inspect_source(
            s3,
            SourceObject(bucket=BUCKET, key="inputs/wide.png"),
            max_bytes=10_000_000,
            max_pixels=19_999,
        )
    assert caught.value.reason == "image_too_large"
    assert "200x100" in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_dimensions_are_read_from_the_header(fmt: str) -> None:
    assert image_dimensions(make_image(fmt, (123, 45))) == (123, 45)


def test_image_types_are_sniffed_from_bytes() -> None:
    assert sniff_image_type(make_image("PNG")) == "image/png"
    assert sniff_image_type(make_image("JPEG")) == "image/jpeg"
    assert sniff_image_type(make_image("WEBP")) == "image/webp"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"%PDF-1.7") is None


def test_output_folder_is_traceable_to_the_input() -> None:
    source = SourceObject(bucket=BUCKET, key="inputs/trips/rome.v2.jpg")
    assert (
        output_folder(source, input_prefix="inputs/", output_prefix="outputs/", job="req-1")
        == "outputs/trips/rome.v2/req-1/"
    )


# --- redirects, the queue's own origin, inline inputs (issue 11, issue 10 item 8) ----------


def test_a_redirect_within_the_allowed_hosts_is_followed(s3: Any, cdn: str) -> None:
    # Given an output URL that redirects twice, on the allowed host
    _Files.redirects = {"/moved.png": f"{cdn}/moved-again.png", "/moved-again.png": "/ok.png"}
    # When copied / Then the image at the end of the chain is stored
    stored = copy(s3, f"{cdn}/moved.png")
    assert stored.content_type == "image/png"
    assert _Files.served == ["/moved.png", "/moved-again.png", "/ok.png"]


def test_a_redirect_off_the_allowlist_is_refused_before_it_is_followed(s3: Any, cdn: str) -> None:
    # Given an output URL on an allowed host that redirects to another host (localhost)
    port = cdn.rsplit(":", 1)[1]
    _Files.redirects = {"/away.png": f"http://localhost:{port}/ok.png"}
    # When copied / Then it is refused as output_url_refused, the target never asked
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, f"{cdn}/away.png")
    assert caught.value.reason == "output_url_refused"
    assert "redirected to http://localhost" in caught.value.message
    assert _Files.served == ["/away.png"]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_redirects_are_bounded(s3: Any, cdn: str) -> None:
    # Given an output URL that redirects to itself forever
    _Files.redirects = {"/loop.png": "/loop.png"}
    # When copied / Then it stops after a few hops, refused
    with pytest.raises(OutputCopyError) as caught:
        copy(s3, f"{cdn}/loop.png")
    assert caught.value.reason == "output_url_refused"
    assert len(_Files.served) == 4  # the URL and three redirects


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


def test_an_input_too_large_to_send_inline_is_refused_before_it_is_read(s3: Any) -> None:
    # Given an 8 MB input (over 10 MB once base64-encoded) and inline transfer
    big = make_image("PNG", (64, 48)) + b"\0" * (8 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="inputs/big.png", Body=big)
    inspected = inspect_source(
        s3, SourceObject(bucket=BUCKET, key="inputs/big.png"), max_bytes=2**30, max_pixels=10**8
    )
    # When it is made a data: URI / Then it is refused with the limit and the way out
    with pytest.raises(InvalidInputError) as caught:
        source_as_data_uri(s3, inspected)
    assert caught.value.reason == "input_too_large_inline"
    assert "10 MB" in caught.value.message
    assert "InputTransfer=presigned" in caught.value.message
    # And a small one is still sent inline
    s3.put_object(Bucket=BUCKET, Key="inputs/small.png", Body=make_image())
    small = inspect_source(
        s3, SourceObject(bucket=BUCKET, key="inputs/small.png"), max_bytes=2**30, max_pixels=10**8
    )
    assert source_as_data_uri(s3, small).startswith("data:image/png;base64,")
