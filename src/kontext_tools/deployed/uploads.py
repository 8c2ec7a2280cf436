"""An upload that starts a job: the image's key, its content type, its prompt and options
as S3 user metadata, and the prompt sidecar for a prompt too long for metadata."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from kontext_pipeline.core.errors import InvalidInputError
from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.storage.metadata import (
    MAX_METADATA_BYTES,
    metadata_size,
    user_metadata_for,
    validate_options,
)

from kontext_tools.errors import ToolReason

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from kontext_tools.deployed.stacks import StackOutputs

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
}


PROMPT_SIDECAR_SUFFIX = ".prompt.txt"


class UploadContent(TypedDict, total=False):
    """What an upload carries besides its bytes (each absent when not given)."""

    prompt: str | None
    options: Mapping[str, Any] | None
    metadata: Mapping[str, str] | None
    content_type: str | None


def content_type_for(key: str) -> str:
    """The Content-Type an object gets from its key's extension."""
    return CONTENT_TYPES.get(Path(key).suffix.lower(), "application/octet-stream")


def sidecar_key_for(key: str) -> str:
    return key + PROMPT_SIDECAR_SUFFIX


def prompt_goes_to_sidecar(prompt: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether upload_image puts this prompt into the sidecar (it does not fit in metadata)."""
    return metadata_size(user_metadata_for(prompt, options)) > MAX_METADATA_BYTES


def upload_image(
    s3: S3Client, bucket: str, key: str, body: bytes, **content: Unpack[UploadContent]
) -> SourceObject:
    """Put an image with its prompt and options as user metadata (validated first).

    A prompt that would take the metadata past S3's 2 KB goes into the `<key>.prompt.txt`
    sidecar instead, written before the image: the image's upload starts the job, and the
    job reads the sidecar when the metadata has no prompt.
    """
    unknown = set(content) - UploadContent.__optional_keys__
    if unknown:
        raise TypeError(f"upload_image() got unexpected keyword arguments {sorted(unknown)}")
    prompt, options = content.get("prompt"), content.get("options")
    if options:
        validate_options(options)
    encoded = user_metadata_for(prompt, options, content.get("metadata"))
    if prompt is not None and metadata_size(encoded) > MAX_METADATA_BYTES:
        del encoded["prompt"]
        s3.put_object(
            Bucket=bucket,
            Key=sidecar_key_for(key),
            Body=prompt.encode("utf-8"),
            ContentType="text/plain; charset=utf-8",
        )
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content.get("content_type") or content_type_for(key),
        Metadata=encoded,
    )
    return SourceObject(
        bucket=bucket,
        key=key,
        version_id=response.get("VersionId"),
        size=len(body),
        etag=response.get("ETag"),
    )


def input_key_for(stack: StackOutputs, image: Path, key: str | None) -> str:
    if key:
        if not key.startswith(stack.input_prefix):
            raise InvalidInputError(
                f"key must start with {stack.input_prefix!r}", reason=ToolReason.INVALID_KEY
            )
        return key
    return f"{stack.input_prefix}{uuid.uuid4().hex[:8]}-{image.name}"
