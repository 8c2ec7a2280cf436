"""The model's outputs into S3: each image streamed from the model's CDN (or a data: URI)
into the outputs prefix, checked on the way, and the job's manifest written last. Which
URLs may be fetched at all: storage/output_origins.py.

Every function takes its boto3 S3 client and httpx client as arguments; S3 errors become
pipeline errors (`s3_error`), download failures `OutputCopyError` or, when worth a retry,
`OutputFetchTransientError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes

import httpx
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from kontext_pipeline.core.errors import OutputCopyError, OutputFetchTransientError, Reason
from kontext_pipeline.core.models import EXTENSIONS, SourceObject
from kontext_pipeline.core.notification import Manifest, StoredOutput
from kontext_pipeline.storage.inspection import SNIFF_BYTES, sniff_image_type
from kontext_pipeline.storage.output_origins import OutputPolicy, open_output
from kontext_pipeline.storage.s3_errors import is_missing_object, s3_error

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

# Streamed multipart upload: memory stays near chunk size x concurrency, whatever the image size.
STREAM_CHUNK_BYTES = 8 * 1024 * 1024
# The most a compressed output inflates to at once (see _decoded).
INFLATE_PIECE_BYTES = 1024 * 1024
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


def output_folder(source: SourceObject, *, input_prefix: str, output_prefix: str, job: str) -> str:
    """`outputs/<input key without prefix and extension>/<job>/`: traceable to the input."""
    relative = source.key.removeprefix(input_prefix)
    stem, dot, extension = relative.rpartition(".")
    name = stem if dot and "/" not in extension else relative
    return f"{output_prefix}{name}/{job}/"


@dataclass(frozen=True)
class OutputPlace:
    """Where one output lands: `<key_stem>.<extension>`, the extension (and the object's
    Content-Type) of the image type its bytes turn out to be, whatever was announced."""

    bucket: str
    key_stem: str
    lineage: Mapping[str, str]  # the input it came from, as S3 metadata


class _CountedChunks:
    """The body's bytes as they came over the wire, counted (Content-Length counts them)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.count += len(chunk)
            yield chunk


@dataclass(frozen=True)
class _Download:
    chunks: Iterator[bytes]  # the output's own bytes, decoded where the host encoded them
    declared_size: int | None  # Content-Length, to tell a truncated download
    received: _CountedChunks | None = None  # the bytes on the wire, which it counts


def copy_output(
    s3: S3Client, http: httpx.Client, url: str, place: OutputPlace, policy: OutputPolicy
) -> StoredOutput:
    """Stream one output image (https URL or data: URI) into S3 and describe what landed."""
    if url.startswith("data:"):
        payload = decode_data_uri(url)
        download = _Download(iter([payload]), len(payload))
        return _store(s3, download, place, policy.max_bytes)
    try:
        with open_output(http, url, policy) as response:
            download = _checked_download(response, policy.max_bytes)
            return _store(s3, download, place, policy.max_bytes)
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise OutputFetchTransientError(f"output download failed: {type(exc).__name__}") from exc


def _checked_download(response: httpx.Response, max_bytes: int) -> _Download:
    """The answer's body, once its status, declared type and declared size pass."""
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
    if declared is not None and int(declared) > max_bytes:
        raise OutputCopyError(
            f"output is {declared} bytes; the limit is {max_bytes}",
            reason=Reason.OUTPUT_TOO_LARGE,
        )
    received = _CountedChunks(response.iter_raw(STREAM_CHUNK_BYTES // 8))
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    declared_size = int(declared) if declared is not None else None
    return _Download(_decoded(received, encoding), declared_size, received)


def _decoded(received: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """The output's own bytes. It is asked for unencoded (Accept-Encoding: identity); a host
    that compresses anyway is inflated here, a bounded piece at a time, so a small body that
    inflates to gigabytes (a compression bomb) is stopped by the size limit, counted on
    what it inflates to, before memory grows. httpx would inflate each piece whole."""
    if encoding in ("", "identity"):
        yield from received
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise OutputCopyError(
            f"output is {encoding}-encoded, which is not read", reason=Reason.OUTPUT_CORRUPT
        )
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # gzip or zlib, by its header
    try:
        for piece in received:
            pending = piece
            while pending:
                yield inflater.decompress(pending, INFLATE_PIECE_BYTES)
                pending = inflater.unconsumed_tail
        while not inflater.eof and (rest := inflater.decompress(b"", INFLATE_PIECE_BYTES)):
            yield rest
    except zlib.error as exc:
        raise OutputCopyError(
            f"output's {encoding} encoding is corrupt: {exc}", reason=Reason.OUTPUT_CORRUPT
        ) from exc


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


def lineage_metadata(values: Mapping[str, str]) -> dict[str, str]:
    """S3 metadata is ASCII and small: percent-encode, cut long values (the manifest has all)."""
    encoded = {}
    for name, value in values.items():
        text = quote(value, safe="/:=@,. ")
        encoded[name] = text[:MAX_LINEAGE_VALUE_BYTES]
    return encoded


def decode_data_uri(uri: str) -> bytes:
    """The bytes a data: URI carries; its media type is not read (the bytes name the type)."""
    header, _, data = uri.partition(",")
    try:
        return (
            base64.b64decode(data, validate=True)
            if header.endswith(";base64")
            else unquote_to_bytes(data)
        )
    except (binascii.Error, ValueError) as exc:
        raise OutputCopyError(
            "output data: URI is not valid base64", reason=Reason.OUTPUT_CORRUPT
        ) from exc


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


def _store(s3: S3Client, download: _Download, place: OutputPlace, max_bytes: int) -> StoredOutput:
    stream = _CheckedStream(download.chunks, max_bytes)
    # Reading the first chunk before the upload starts keeps a non-image out of S3 entirely.
    first = io.BufferedReader(stream, buffer_size=STREAM_CHUNK_BYTES // 8)
    first.peek(SNIFF_BYTES)
    sniffed = sniff_image_type(stream.head)
    if sniffed is None:
        raise OutputCopyError("output bytes are not an image", reason=Reason.OUTPUT_NOT_AN_IMAGE)
    # The bytes, not the announced type, name the extension.
    key = f"{place.key_stem}.{EXTENSIONS.get(sniffed, 'bin')}"
    try:
        s3.upload_fileobj(
            first,
            place.bucket,
            key,
            ExtraArgs={"ContentType": sniffed, "Metadata": lineage_metadata(place.lineage)},
            Config=TRANSFER_CONFIG,
        )
    except ClientError as exc:
        raise s3_error(exc, f"s3://{place.bucket}/{key}") from exc
    # Content-Length counts the bytes on the wire, encoded or not.
    arrived = download.received.count if download.received is not None else stream.size
    if download.declared_size is not None and arrived != download.declared_size:
        raise OutputFetchTransientError(
            f"output was truncated: {arrived} of {download.declared_size} bytes arrived"
        )
    return StoredOutput(
        s3_uri=f"s3://{place.bucket}/{key}",
        bucket=place.bucket,
        key=key,
        size=stream.size,
        content_type=sniffed,
        sha256=stream.sha256.hexdigest(),
    )


def _put(s3: S3Client, bucket: str, key: str, body: bytes, *, content_type: str) -> None:
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except ClientError as exc:
        raise s3_error(exc, f"s3://{bucket}/{key}") from exc
