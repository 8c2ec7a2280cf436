"""From an object's S3 user metadata to a validated prompt and model options.

S3 lower-cases user-metadata keys and returns non-ASCII values RFC 2047-encoded
(`=?UTF-8?B?...?=`). Users write option names with `-` or `_`. Every option is validated
here, before anything is paid for, and every problem is named in the error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from typing import Any

from pydantic import ValidationError

from kontext_pipeline.core.errors import InvalidInputError, Reason
from kontext_pipeline.core.models import EditOptions

PROMPT_FIELD = "prompt"
OPTION_FIELDS: tuple[str, ...] = tuple(EditOptions.model_fields)
# Metadata the pipeline itself reads, not the model: known, so not warned about.
CALLBACK_FIELD = "callback_url"
PIPELINE_FIELDS: tuple[str, ...] = (CALLBACK_FIELD,)
# The model's own limit is generous; this keeps one job's state far below Step Functions' 256 KB.
MAX_PROMPT_CHARS = 10_000
# S3 refuses user metadata over 2 KB, counted as the UTF-8 bytes of every name and value
# ("Working with object metadata", S3 user guide).
MAX_METADATA_BYTES = 2048


@dataclass(frozen=True)
class EditSpec:
    """What the upload asks for: the prompt, the options, and what was ignored on the way."""

    prompt: str
    options: EditOptions
    prompt_source: str
    ignored_keys: tuple[str, ...] = field(default=())


def decode_metadata_value(value: str) -> str:
    """Decode an RFC 2047 encoded-word value as S3 returns non-ASCII metadata."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"metadata value {value[:40]!r} is not valid RFC 2047 text: {exc}",
            reason=Reason.INVALID_METADATA,
        ) from exc


def encode_metadata_value(value: str) -> str:
    """For uploads: non-ASCII text goes RFC 2047-encoded, the form S3 returns it in."""
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=10_000).replace("\n", "")


def metadata_size(metadata: Mapping[str, str]) -> int:
    """The bytes S3 counts against its 2 KB: every name (without x-amz-meta-) and value."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items())


def user_metadata_for(
    prompt: str | None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The x-amz-meta-* an upload carries, encoded as S3 stores them: the options under
    their `-` names, the prompt, then any other metadata."""
    user_metadata = {
        name.replace("_", "-"): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in (options or {}).items()
    }
    if prompt is not None:
        user_metadata[PROMPT_FIELD] = prompt
    user_metadata.update(metadata or {})
    return {name: encode_metadata_value(value) for name, value in user_metadata.items()}


def normalise_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Lower-case keys, `-` to `_`, drop a leading `x-amz-meta-`, decode values."""
    normalised: dict[str, str] = {}
    for raw_key, raw_value in metadata.items():
        key = raw_key.lower().removeprefix("x-amz-meta-").replace("-", "_").strip()
        normalised[key] = decode_metadata_value(raw_value).strip()
    return normalised


def parse_sidecar(text: str, *, name: str) -> dict[str, Any]:
    """A sidecar `<key>.prompt.txt` is the prompt; `<key>.prompt.json` is prompt + options."""
    if not name.endswith(".json"):
        return {PROMPT_FIELD: text.strip()}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"sidecar {name} is not valid JSON: {exc.msg} at line {exc.lineno}",
            reason=Reason.INVALID_SIDECAR,
        ) from exc
    if not isinstance(document, dict):
        raise InvalidInputError(
            f"sidecar {name} must hold a JSON object", reason=Reason.INVALID_SIDECAR
        )
    return {str(key).lower().replace("-", "_"): value for key, value in document.items()}


@dataclass(frozen=True)
class Sidecar:
    """A `<key>.prompt.txt` / `.prompt.json` beside the upload, as parse_sidecar read it."""

    name: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class EditDefaults:
    """The deployment's default prompt and options: what holds where an upload says nothing."""

    prompt: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def build_edit_spec(
    metadata: Mapping[str, str],
    *,
    sidecar: Sidecar | None = None,
    defaults: EditDefaults = EditDefaults(),
    overrides: Mapping[str, Any] | None = None,
) -> EditSpec:
    """Merge defaults < sidecar < metadata < overrides (a backfill's own prompt and
    options) and validate the result against the model's rules."""
    origins = (
        (f"sidecar {sidecar.name}" if sidecar else "sidecar", sidecar.fields if sidecar else {}),
        ("metadata", normalise_metadata(metadata)),
        ("backfill request", overrides or {}),
    )
    merged = _merge(origins, defaults)
    return EditSpec(
        prompt=_checked_prompt(merged.prompt),
        options=validate_options(merged.fields),
        prompt_source=merged.prompt_source,
        ignored_keys=tuple(sorted(merged.ignored)),
    )


@dataclass
class _Merged:
    prompt: Any
    prompt_source: str
    fields: dict[str, Any]
    ignored: list[str]


def _merge(origins: tuple[tuple[str, Mapping[str, Any]], ...], defaults: EditDefaults) -> _Merged:
    """Each origin's prompt and options over the ones before it; unknown keys noted."""
    merged = _Merged(defaults.prompt, "default", dict(defaults.options), [])
    for origin, values in origins:
        for key, value in values.items():
            if key == PROMPT_FIELD:
                merged.prompt, merged.prompt_source = value, origin
            elif key in OPTION_FIELDS:
                merged.fields[key] = value
            elif key not in PIPELINE_FIELDS:
                merged.ignored.append(key)
    return merged


def _checked_prompt(prompt: Any) -> str:
    prompt_text = prompt.strip() if isinstance(prompt, str) else ""
    if not prompt_text:
        raise InvalidInputError(
            "no prompt: set the `prompt` user metadata (x-amz-meta-prompt), upload a "
            "<key>.prompt.txt sidecar first, or configure a default prompt",
            reason=Reason.MISSING_PROMPT,
        )
    if len(prompt_text) > MAX_PROMPT_CHARS:
        raise InvalidInputError(
            f"prompt is {len(prompt_text)} characters; at most {MAX_PROMPT_CHARS} are accepted",
            reason=Reason.PROMPT_TOO_LONG,
        )
    return prompt_text


def validate_options(fields: Mapping[str, Any]) -> EditOptions:
    """Validate option values (strings from metadata or typed values from JSON)."""
    cleaned = {key: _blank_to_none(value) for key, value in fields.items()}
    try:
        return EditOptions.model_validate({k: v for k, v in cleaned.items() if v is not None})
    except ValidationError as exc:
        raise InvalidInputError(
            describe_validation_error(exc), reason=Reason.INVALID_OPTION
        ) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the option as the user wrote it and the value given."""
    problems = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "options"
        problems.append(f"{name.replace('_', '-')}={error.get('input')!r}: {error['msg']}")
    return "invalid option " + "; ".join(problems)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value
