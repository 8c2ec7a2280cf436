"""The model's outputs into S3: which URLs may be fetched (`OutputPolicy`), each image
streamed from the model's CDN into the outputs prefix, and the job's manifest.

Every function takes its boto3 S3 client and httpx client as arguments; S3 errors become
pipeline errors (`s3_error`), download failures `OutputCopyError` or, when worth a retry,
`OutputFetchTransientError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

import httpx
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from kontext_pipeline.errors import (
    OutputCopyError,
    OutputFetchTransientError,
    Reason,
    is_missing_object,
    s3_error,
)
from kontext_pipeline.inspection import SNIFF_BYTES, sniff_image_type
from kontext_pipeline.models import EXTENSIONS, SourceObject
from kontext_pipeline.outcomes import Manifest, StoredOutput

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

# Streamed multipart upload: memory stays near chunk size x concurrency, whatever the image size.
STREAM_CHUNK_BYTES = 8 * 1024 * 1024


TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=STREAM_CHUNK_BYTES,
    multipart_chunksize=STREAM_CHUNK_BYTES,
    max_concurrency=2,
    use_threads=True,
)


# s3transfer reads up to 10 parts of a non-seekable stream ahead by default (80 MB here);
# two keep memory flat whatever the output's size, and still overlap download and upload.
TRANSFER_CONFIG.max_in_memory_upload_chunks = 2


# S3 caps all user metadata at 2 KB; lineage values are cut to leave room for the rest.
MAX_LINEAGE_VALUE_BYTES = 512


# A CDN may redirect once or twice (to a regional or signed URL); more is a loop.
MAX_OUTPUT_REDIRECTS = 3


REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def output_folder(source: SourceObject, *, input_prefix: str, output_prefix: str, job: str) -> str:
    """`outputs/<input key without prefix and extension>/<job>/`: traceable to the input."""
    relative = source.key.removeprefix(input_prefix)
    stem, dot, extension = relative.rpartition(".")
    name = stem if dot and "/" not in extension else relative
    return f"{output_prefix}{name}/{job}/"


def url_origin(url: str) -> str:
    """`scheme://host:port`, with the scheme's default port spelled out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:
        port = None
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class OutputPolicy:
    """Where outputs may come from and how large they may be.

    `trusted_origins` are exact origins (scheme, host and port) accepted whatever the host
    list says: the queue at FAL_BASE_URL is already trusted with the API key, so files it
    serves from its own origin are as trustworthy as its answers.
    """

    allowed_hosts: tuple[str, ...]
    allow_http: bool
    max_bytes: int
    trusted_origins: tuple[str, ...] = ()

    @classmethod
    def for_queue(
        cls,
        fal_base_url: str,
        *,
        allowed_hosts: tuple[str, ...],
        allow_http: bool,
        max_bytes: int,
    ) -> OutputPolicy:
        return cls(allowed_hosts, allow_http, max_bytes, (url_origin(fal_base_url),))

    def check_url(self, url: str) -> None:
        """Refuse schemes and hosts an output must not come from (SSRF guard)."""
        if self.trusted_origins and url_origin(url) in self.trusted_origins:
            return
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or (
            parts.scheme == "http" and not self.allow_http
        ):
            raise OutputCopyError(
                f"output URL scheme {parts.scheme!r} is not allowed",
                reason=Reason.OUTPUT_URL_REFUSED,
            )
        if not any(
            host == allowed or host.endswith("." + allowed) for allowed in self.allowed_hosts
        ):
            raise OutputCopyError(
                f"output host {host!r} is not on the allowlist", reason=Reason.OUTPUT_URL_REFUSED
            )
        if _is_internal_address(host) and host not in self.allowed_hosts:
            raise OutputCopyError(
                f"output host {host!r} is an internal address", reason=Reason.OUTPUT_URL_REFUSED
            )


def copy_output(
    s3: S3Client,
    http: httpx.Client,
    url: str,
    *,
    bucket: str,
    key_stem: str,
    expected_type: str,
    policy: OutputPolicy,
    lineage: dict[str, str],
) -> StoredOutput:
    """Stream one output image (https URL or data: URI) into S3 and describe what landed."""
    if url.startswith("data:"):
        content_type, payload = decode_data_uri(url)
        return _store(
            s3,
            iter([payload]),
            bucket=bucket,
            key_stem=key_stem,
            content_type=content_type or expected_type,
            policy=policy,
            lineage=lineage,
            declared_size=len(payload),
        )
    try:
        with _follow_allowed_redirects(http, url, policy) as response:
            if response.status_code >= 500 or response.status_code in (408, 429):
                raise OutputFetchTransientError(f"output download answered {response.status_code}")
            if response.status_code >= 400:
                raise OutputCopyError(
                    f"output download answered {response.status_code} (expired or forbidden URL?)",
                    reason=Reason.OUTPUT_UNAVAILABLE,
                )
            declared = response.headers.get("content-length")
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            if content_type and not content_type.startswith("image/"):
                raise OutputCopyError(
                    f"output is {content_type!r}, not an image", reason=Reason.OUTPUT_NOT_AN_IMAGE
                )
            if declared is not None and int(declared) > policy.max_bytes:
                raise OutputCopyError(
                    f"output is {declared} bytes; the limit is {policy.max_bytes}",
                    reason=Reason.OUTPUT_TOO_LARGE,
                )
            return _store(
                s3,
                response.iter_bytes(STREAM_CHUNK_BYTES // 8),
                bucket=bucket,
                key_stem=key_stem,
                content_type=content_type or expected_type,
                policy=policy,
                lineage=lineage,
                declared_size=int(declared) if declared is not None else None,
            )
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise OutputFetchTransientError(f"output download failed: {type(exc).__name__}") from exc


@contextmanager
def _follow_allowed_redirects(
    http: httpx.Client, url: str, policy: OutputPolicy
) -> Iterator[httpx.Response]:
    """GET an output, following redirects by hand so every hop passes the allowlist.

    The client never follows redirects itself (a redirect could lead anywhere, even to an
    internal address); here each Location is checked like the URL the model returned, and
    there are at most MAX_OUTPUT_REDIRECTS of them.
    """
    for hop in range(MAX_OUTPUT_REDIRECTS + 1):
        try:
            policy.check_url(url)
        except OutputCopyError as exc:
            if hop == 0:
                raise
            raise OutputCopyError(
                f"output URL redirected to {_redact(url)}: {exc.message}",
                reason=Reason.OUTPUT_URL_REFUSED,
            ) from exc
        with http.stream("GET", url) as response:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_CODES and location:
                url = str(response.url.join(location))
                continue
            yield response
            return
    raise OutputCopyError(
        f"output URL redirected more than {MAX_OUTPUT_REDIRECTS} times (last {_redact(url)})",
        reason=Reason.OUTPUT_URL_REFUSED,
    )


def _redact(url: str) -> str:
    # Signed CDN URLs carry credentials in the query: keep them out of messages.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def write_manifest(s3: S3Client, manifest: Manifest, *, bucket: str, key: str) -> str:
    """Written last, after every output: a manifest means the job's outputs are complete."""
    _put(
        s3,
        bucket,
        key,
        manifest.model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
    return f"s3://{bucket}/{key}"


def read_manifest(s3: S3Client, *, bucket: str, key: str) -> Manifest | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing_object(exc):
            return None
        raise s3_error(exc, f"s3://{bucket}/{key}") from exc
    return Manifest.model_validate_json(body)


def lineage_metadata(values: dict[str, str]) -> dict[str, str]:
    """S3 metadata is ASCII and small: percent-encode, cut long values (the manifest has all)."""
    encoded = {}
    for name, value in values.items():
        text = quote(value, safe="/:=@,. ")
        encoded[name] = text[:MAX_LINEAGE_VALUE_BYTES]
    return encoded


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    header, _, data = uri.partition(",")
    media_type = header.removeprefix("data:").split(";")[0]
    try:
        payload = (
            base64.b64decode(data, validate=True)
            if header.endswith(";base64")
            else (unquote_to_bytes(data))
        )
    except (binascii.Error, ValueError) as exc:
        raise OutputCopyError(
            "output data: URI is not valid base64", reason=Reason.OUTPUT_CORRUPT
        ) from exc
    return media_type, payload


class _CheckedStream(io.RawIOBase):
    """A readable file over the download that hashes, counts, sniffs and enforces the limit."""

    def __init__(self, chunks: Iterator[bytes], max_bytes: int) -> None:
        self._chunks = chunks
        # A view, so handing out part of a chunk copies only that part, once.
        self._buffer = memoryview(b"")
        self._max_bytes = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.head = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._accept(chunk)
            self._buffer = memoryview(chunk)
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def _accept(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise OutputCopyError(
                f"output exceeds the limit of {self._max_bytes} bytes",
                reason=Reason.OUTPUT_TOO_LARGE,
            )
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.sha256.update(chunk)


def _store(
    s3: S3Client,
    chunks: Iterator[bytes],
    *,
    bucket: str,
    key_stem: str,
    content_type: str,
    policy: OutputPolicy,
    lineage: dict[str, str],
    declared_size: int | None,
) -> StoredOutput:
    stream = _CheckedStream(chunks, policy.max_bytes)
    extension = EXTENSIONS.get(content_type, "bin")
    key = f"{key_stem}.{extension}"
    # Reading the first chunk before the upload starts keeps a non-image out of S3 entirely.
    first = io.BufferedReader(stream, buffer_size=STREAM_CHUNK_BYTES // 8)
    first.peek(SNIFF_BYTES)
    sniffed = sniff_image_type(stream.head)
    if sniffed is None:
        raise OutputCopyError("output bytes are not an image", reason=Reason.OUTPUT_NOT_AN_IMAGE)
    if sniffed != content_type:
        content_type, key = sniffed, f"{key_stem}.{EXTENSIONS.get(sniffed, 'bin')}"
    try:
        s3.upload_fileobj(
            first,
            bucket,
            key,
            ExtraArgs={"ContentType": content_type, "Metadata": lineage_metadata(lineage)},
            Config=TRANSFER_CONFIG,
        )
    except ClientError as exc:
        raise s3_error(exc, f"s3://{bucket}/{key}") from exc
    if declared_size is not None and stream.size != declared_size:
        raise OutputFetchTransientError(
            f"output was truncated: {stream.size} of {declared_size} bytes arrived"
        )
    return StoredOutput(
        s3_uri=f"s3://{bucket}/{key}",
        bucket=bucket,
        key=key,
        size=stream.size,
        content_type=content_type,
        sha256=stream.sha256.hexdigest(),
    )


def _put(s3: S3Client, bucket: str, key: str, body: bytes, *, content_type: str) -> None:
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except ClientError as exc:
        raise s3_error(exc, f"s3://{bucket}/{key}") from exc


def _is_internal_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in ("localhost",) or host.endswith(".internal")
    return address.is_private or address.is_loopback or address.is_link_local
