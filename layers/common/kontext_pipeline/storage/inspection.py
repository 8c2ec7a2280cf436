"""The uploaded object: is it an image the model accepts, its sidecar prompt, and how the
model will read it (a presigned URL, or the bytes inline as a data: URI).

Every function takes its boto3 S3 client as an argument; S3 errors become pipeline errors
here (`s3_error`), so they never leak upward.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kontext_pipeline.core.errors import InvalidInputError, Reason
from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.storage.metadata import (
    PROMPT_FIELD,
    Sidecar,
    normalise_metadata,
    parse_sidecar,
)
from kontext_pipeline.storage.s3_errors import is_missing_object, s3_error

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import HeadObjectOutputTypeDef, HeadObjectRequestTypeDef

# Bytes enough to recognise every format the model accepts.
SNIFF_BYTES = 32
# Bytes enough to find the dimensions in any common header (JPEG's may follow EXIF).
HEADER_BYTES = 64 * 1024
SIDECAR_SUFFIXES = (".prompt.txt", ".prompt.json")
MAX_SIDECAR_BYTES = 64 * 1024
# fal's maintainers report inline data: inputs failing above roughly 10 MB encoded.
MAX_INLINE_INPUT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class InspectedObject:
    source: SourceObject
    metadata: dict[str, str]
    image_type: str


def sniff_image_type(head: bytes) -> str | None:
    """The image's MIME type from its first bytes, or None when it is not an image we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return None


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's first bytes, where the format puts them early."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        return _webp_dimensions(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_dimensions(head)
    return None


def _webp_dimensions(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width = int.from_bytes(head[26:28], "little") & 0x3FFF
        return width, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _jpeg_dimensions(head: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(head):
        if head[position] != 0xFF:
            return None
        marker = head[position + 1]
        length = int.from_bytes(head[position + 2 : position + 4], "big")
        # SOF0-SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(head[position + 5 : position + 7], "big")
            width = int.from_bytes(head[position + 7 : position + 9], "big")
            return width, height
        position += 2 + length
    return None


def inspect_source(
    s3: S3Client, source: SourceObject, *, max_bytes: int, max_pixels: int
) -> InspectedObject:
    """Check the object is there, non-empty, not too large and really an image."""
    head = _head(s3, source)
    size = int(head["ContentLength"])
    if size == 0:
        raise InvalidInputError(f"{source.s3_uri} is empty (0 bytes)", reason=Reason.EMPTY_OBJECT)
    if size > max_bytes:
        raise InvalidInputError(
            f"{source.s3_uri} is {size} bytes; the limit is {max_bytes}",
            reason=Reason.OBJECT_TOO_LARGE,
        )
    first_bytes = _get_range(s3, source, f"bytes=0-{HEADER_BYTES - 1}")
    image_type = sniff_image_type(first_bytes)
    if image_type is None:
        raise InvalidInputError(
            f"{source.s3_uri} is not a JPEG, PNG, WebP, GIF or AVIF image "
            f"(Content-Type {head.get('ContentType', 'unknown')!r})",
            reason=Reason.NOT_AN_IMAGE,
        )
    dimensions = image_dimensions(first_bytes)
    if dimensions and dimensions[0] * dimensions[1] > max_pixels:
        raise InvalidInputError(
            f"{source.s3_uri} is {dimensions[0]}x{dimensions[1]} pixels; the model takes at "
            f"most {max_pixels:,} pixels",
            reason=Reason.IMAGE_TOO_LARGE,
        )
    pinned = source.model_copy(
        update={"version_id": head.get("VersionId") or source.version_id, "size": size}
    )
    return InspectedObject(
        source=pinned,
        metadata=dict(head.get("Metadata") or {}),
        image_type=image_type,
    )


def upload_sidecar(
    s3: S3Client, source: SourceObject, metadata: Mapping[str, str]
) -> Sidecar | None:
    """The upload's sidecar, read only when its metadata carries no prompt (metadata wins)."""
    if normalise_metadata(metadata).get(PROMPT_FIELD):
        return None
    return read_sidecar(s3, source)


def read_sidecar(s3: S3Client, source: SourceObject) -> Sidecar | None:
    """The first `<key>.prompt.txt` / `<key>.prompt.json` beside the object, parsed."""
    for suffix in SIDECAR_SUFFIXES:
        key = source.key + suffix
        try:
            response = s3.get_object(
                Bucket=source.bucket, Key=key, Range=f"bytes=0-{MAX_SIDECAR_BYTES - 1}"
            )
        except ClientError as exc:
            if is_missing_object(exc):
                continue
            raise s3_error(exc, f"s3://{source.bucket}/{key}") from exc
        body: bytes = response["Body"].read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"sidecar s3://{source.bucket}/{key} is not UTF-8 text",
                reason=Reason.INVALID_SIDECAR,
            ) from exc
        return Sidecar(key, parse_sidecar(text, name=key))
    return None


def presign_source(s3: S3Client, source: SourceObject, *, expires_seconds: int) -> str:
    """A GET URL the model can fetch the input from, pinned to the object's version."""
    params = object_request(source)
    url: str = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds)
    return url


def inline_size(byte_count: int, image_type: str) -> int:
    """Length of `data:<type>;base64,<payload>` for this many bytes."""
    return len(f"data:{image_type};base64,") + 4 * math.ceil(byte_count / 3)


def source_as_data_uri(
    s3: S3Client, inspected: InspectedObject, *, max_encoded_bytes: int = MAX_INLINE_INPUT_BYTES
) -> str:
    """The whole object inline, for a model that cannot reach the bucket.

    Refused before anything is read or submitted when the encoded URI would pass what the
    model reliably accepts inline (about 10 MB): the job fails at no cost, with the reason.
    """
    size = inspected.source.size or 0
    encoded = inline_size(size, inspected.image_type)
    if encoded > max_encoded_bytes:
        raise InvalidInputError(
            f"{inspected.source.s3_uri} is {size:,} bytes, {encoded:,} as an inline data: URI; "
            f"the model accepts inline inputs up to about {max_encoded_bytes // (1024 * 1024)} "
            "MB encoded. Use InputTransfer=presigned (a URL the model fetches) or upload a "
            "smaller image",
            reason=Reason.INPUT_TOO_LARGE_INLINE,
        )
    body = _get_range(s3, inspected.source, f"bytes=0-{(inspected.source.size or 1) - 1}")
    return f"data:{inspected.image_type};base64,{base64.b64encode(body).decode('ascii')}"


def object_request(source: SourceObject) -> HeadObjectRequestTypeDef:
    """The parameters of a read of this object: its version pinned when it has one."""
    params: HeadObjectRequestTypeDef = {"Bucket": source.bucket, "Key": source.key}
    if source.pinned_version:
        params["VersionId"] = source.pinned_version
    return params


def _head(s3: S3Client, source: SourceObject) -> HeadObjectOutputTypeDef:
    try:
        return s3.head_object(**object_request(source))
    except ClientError as exc:
        raise s3_error(exc, source.s3_uri) from exc


def _get_range(s3: S3Client, source: SourceObject, byte_range: str) -> bytes:
    params = object_request(source)
    params["Range"] = byte_range
    try:
        body: bytes = s3.get_object(**params)["Body"].read()
    except ClientError as exc:
        raise s3_error(exc, source.s3_uri) from exc
    return body
