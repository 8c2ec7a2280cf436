"""The body of `POST /v1/edits`, checked by the rules the trigger applies to an upload's
metadata (storage/metadata.py), so that a request the job would fail on is refused now,
before anything is fetched or stored; and the S3 metadata it becomes.

    {"prompt": ..., "image_url": ... | "upload": true, "content_type": ...,
     <model options: seed, num_images, output_format, ...>,
     "callback_url": ..., "metadata": {...}}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kontext_pipeline.core.errors import InvalidInputError, Reason
from kontext_pipeline.core.models import EditOptions
from kontext_pipeline.intake.problems import IntakeRefusedError
from kontext_pipeline.storage.metadata import (
    CALLBACK_FIELD,
    MAX_METADATA_BYTES,
    OPTION_FIELDS,
    PROMPT_FIELD,
    build_edit_spec,
    metadata_size,
    user_metadata_for,
)

UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp")
EDIT_ID_FIELD = "edit-id"
# What S3 keeps as a metadata name or value: header-safe ASCII.
_METADATA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_HEADER_SAFE_URL = re.compile(r"[!-~]{1,2048}")
# The metadata names the pipeline itself reads: the request's own fields set them.
_PIPELINE_NAMES = frozenset(
    {PROMPT_FIELD, EDIT_ID_FIELD, CALLBACK_FIELD.replace("_", "-")}
    | {name.replace("_", "-") for name in OPTION_FIELDS}
)
_REQUEST_FIELDS = ("prompt", "image_url", "upload", "content_type", "callback_url", "metadata")


@dataclass(frozen=True)
class EditRequestBody:
    """A checked request: where the image comes from, and the S3 metadata to store with it
    (the edit's id among it)."""

    image_url: str | None
    content_type: str
    images: int  # what the edit asks the model for (num_images)
    metadata: dict[str, str] = field(default_factory=dict)


def _refused(detail: str) -> IntakeRefusedError:
    return IntakeRefusedError(detail, reason=Reason.INVALID_REQUEST)


def parse_json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _refused(f"the body is not JSON: {exc.msg} at character {exc.pos}") from exc
    except UnicodeDecodeError as exc:
        raise _refused(f"the body is not UTF-8 JSON: {exc.reason}") from exc
    if not isinstance(body, dict):
        raise _refused('the body is a JSON object: {"prompt": ..., "image_url": ...}')
    return body


def _source(body: dict[str, Any]) -> tuple[str | None, str]:
    """(image_url, content_type): exactly one of an image URL and `"upload": true`."""
    image_url, upload = body.get("image_url"), body.get("upload", False)
    if upload not in (True, False) or (image_url is None) == (upload is False):
        raise _refused('name the image: either "image_url": "https://..." or "upload": true')
    if image_url is not None:
        if not isinstance(image_url, str) or not image_url.strip():
            raise _refused("image_url is a URL string")
        return image_url.strip(), ""
    content_type = body.get("content_type", "image/png")
    if content_type not in UPLOAD_TYPES:
        raise _refused(f"content_type is one of {', '.join(UPLOAD_TYPES)}")
    return None, str(content_type)


def _as_metadata(body: dict[str, Any], options: EditOptions) -> dict[str, str]:
    """The S3 metadata an upload of the trigger's contract carries (storage/metadata.py),
    from the checked options, the callback and the caller's own."""
    named = _callback_metadata(body.get("callback_url")) | _callers_metadata(body)
    given = options.model_dump(exclude_unset=True)
    return user_metadata_for(str(body["prompt"]).strip(), given, named)


def _callback_metadata(callback_url: Any) -> dict[str, str]:
    if callback_url is None:
        return {}
    if not isinstance(callback_url, str) or not _HEADER_SAFE_URL.fullmatch(callback_url):
        raise _refused("callback_url is an https URL of printable ASCII, without spaces")
    return {CALLBACK_FIELD.replace("_", "-"): callback_url}


def _callers_metadata(body: dict[str, Any]) -> dict[str, str]:
    """The caller's own `metadata`, kept with the object under names the pipeline leaves
    alone."""
    extra = body.get("metadata") or {}
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise _refused('metadata is an object of strings: {"order": "A-1001"}')
    if not all(_METADATA_NAME.fullmatch(name) for name in extra):
        raise _refused("metadata names are letters, digits, - and _ (S3 metadata names)")
    taken = {key.lower().replace("_", "-") for key in extra} & _PIPELINE_NAMES
    if taken:
        raise _refused(f"metadata may not set {', '.join(sorted(taken))}: use the request fields")
    return {key.lower(): value for key, value in extra.items()}


def check_edit_request(body: dict[str, Any], edit_id: str) -> EditRequestBody:
    """The request as the trigger will read it, or the problem it would fail with. Its
    metadata names the edit too, so S3's 2 KB is counted on all the object will carry."""
    image_url, content_type = _source(body)
    options = {key: value for key, value in body.items() if key not in _REQUEST_FIELDS}
    if not isinstance(body.get("prompt"), str):
        raise IntakeRefusedError("prompt is required, as text", reason=Reason.MISSING_PROMPT)
    try:
        spec = build_edit_spec({}, overrides={PROMPT_FIELD: body["prompt"], **options})
    except InvalidInputError as exc:
        raise IntakeRefusedError(exc.message, reason=exc.reason) from exc  # type: ignore[arg-type]
    if spec.ignored_keys:
        raise _refused(f"unknown fields: {', '.join(spec.ignored_keys)}")
    metadata = _as_metadata(body, spec.options) | {EDIT_ID_FIELD: edit_id}
    size = metadata_size(metadata)
    if size > MAX_METADATA_BYTES:
        raise _refused(
            f"prompt, options and metadata take {size} bytes of S3 metadata; S3 keeps at most "
            f"{MAX_METADATA_BYTES}"
        )
    return EditRequestBody(
        image_url=image_url,
        content_type=content_type,
        images=spec.options.num_images,
        metadata=metadata,
    )
