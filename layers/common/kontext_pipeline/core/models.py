"""Payloads: the model's request and result, and the job that travels through the state
machine (what a job ends with, its outputs and notification, is core/notification.py).

The job is what Step Functions carries between states, so it holds references (S3 keys,
queue URLs), never image bytes: a state's payload is capped at 256 KB.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

QueueStatusName = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
OutputFormat = Literal["jpeg", "png"]
AspectRatio = Literal["21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"]
SafetyTolerance = Literal["1", "2", "3", "4", "5", "6"]

ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
SAFETY_TOLERANCES: tuple[str, ...] = get_args(SafetyTolerance)
EXTENSIONS: dict[str, str] = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
# Step Functions' limit on an execution's name.
EXECUTION_NAME_MAX = 80


def utc_now() -> datetime:
    return datetime.now(UTC)


# fal's list price for FLUX.1 Kontext [max], per output image (README, "A spending cap"):
# the backfill's estimate and `kontext-pipeline jobs`' cost column.
MODEL_PRICE_PER_IMAGE_USD = 0.08


class EditOptions(BaseModel):
    """The model's optional fields, with its own rules (README.md, the metadata contract)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    guidance_scale: float | None = Field(None, ge=1, le=20)
    num_images: int = Field(1, ge=1, le=4)
    safety_tolerance: SafetyTolerance | None = None
    output_format: OutputFormat = "jpeg"
    aspect_ratio: AspectRatio | None = None
    sync_mode: bool = False
    enhance_prompt: bool | None = None

    @field_validator("safety_tolerance", mode="before")
    @classmethod
    def _tolerance_as_text(cls, value: Any) -> Any:
        # The model wants a string; JSON defaults and hand-written metadata often give a number.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("output_format", mode="before")
    @classmethod
    def _jpg_is_jpeg(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "jpeg" if value == "jpg" else value
        return value


class ModelRequest(EditOptions):
    """The body of `POST {base}/{model_path}`: the prompt, the input and the options."""

    prompt: str = Field(min_length=1)
    image_url: str = Field(min_length=1)

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class SourceObject(BaseModel):
    """The uploaded object one job is for: one object version, one job."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    sequencer: str | None = None
    size: int | None = None
    etag: str | None = None

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def pinned_version(self) -> str | None:
        """The version id to pin a read to, or None. S3 reports "null" as the version of an
        object written while versioning was off: never sent as a pin (no such version id)."""
        return self.version_id if self.version_id and self.version_id != "null" else None

    @property
    def execution_name(self) -> str:
        """One name per object version: a repeated event cannot start a second execution.

        The version id identifies a write in a versioned bucket (the template's is), and it is
        all the name uses when known, so a backfill, which lists objects and has no event
        sequencer, names an upload's job exactly as the trigger did
        (steps/start_backfill_edit.py). Without a version id the sequencer identifies the
        write (duplicate deliveries of one event carry the same sequencer, an overwrite a new
        one), with the ETag where the event has no sequencer either. It is also the job's key
        in the jobs table (jobs/ledger.py).
        """
        identity: tuple[str, ...]
        if self.pinned_version:
            identity = (self.bucket, self.key, self.pinned_version)
        else:
            identity = (
                self.bucket,
                self.key,
                "",
                self.sequencer or "",
                (self.etag or "").strip('"'),
            )
        digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:32]
        stem = self.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "object"
        return f"{slug}-{digest}"[:EXECUTION_NAME_MAX]


def _none_as_empty(value: Any, empty: Any) -> Any:
    return empty if value is None else value


class QueueSubmission(BaseModel):
    """The queue's answer to a submit: the request id and the three URLs to use from now on.

    `gateway_request_id` names the last internal attempt when fal retried the request; it
    is what a webhook's header may carry instead of `request_id`.
    """

    request_id: str
    gateway_request_id: str | None = None
    status_url: str
    response_url: str
    cancel_url: str
    queue_position: int | None = None


class QueueStatus(BaseModel):
    """A status answer. fal's own client reads `metrics` with a default ("legacy apps might
    not return metrics") and `logs` may be null: both are read leniently."""

    status: QueueStatusName
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None
    logs: list[dict[str, Any]] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_may_be_null(cls, value: Any) -> Any:
        return _none_as_empty(value, {})

    @field_validator("logs", mode="before")
    @classmethod
    def _logs_may_be_anything_empty(cls, value: Any) -> Any:
        return value if isinstance(value, list) else None


class ResultImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str
    width: int | None = None
    height: int | None = None
    file_name: str | None = None
    file_size: int | None = None


class ModelResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    images: list[ResultImage]
    seed: int | None = None
    has_nsfw_concepts: list[bool] = Field(default_factory=list)
    timings: dict[str, Any] = Field(default_factory=dict)
    prompt: str | None = None

    @field_validator("has_nsfw_concepts", mode="before")
    @classmethod
    def _flags_may_be_null(cls, value: Any) -> Any:
        # Absent, null, or null entries: unknown is reported as not flagged.
        if not isinstance(value, list):
            return []
        return [bool(flag) for flag in value]

    @field_validator("timings", mode="before")
    @classmethod
    def _timings_may_be_null(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


class EditOverrides(BaseModel):
    """A prompt and options given for a whole backfill, over each object's own metadata.

    Options stay as given here and are validated with the rest at submit, so a bad value
    fails that job with `invalid_option`, as metadata would.
    """

    model_config = ConfigDict(frozen=True)

    prompt: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    def as_fields(self) -> dict[str, Any]:
        fields = {key.lower().replace("-", "_"): value for key, value in self.options.items()}
        if self.prompt is not None:
            fields["prompt"] = self.prompt
        return fields


class JobStart(BaseModel):
    """The execution's input, written by the trigger (or the backfill, with its request)."""

    source: SourceObject
    received_at: datetime = Field(default_factory=utc_now)
    request: EditOverrides | None = None


class ModelJob(BaseModel):
    """The state the state machine carries from submit to collect."""

    source: SourceObject
    prompt: str
    options: EditOptions
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    submitted_at: datetime
    # Queue-wait limit: past this, a request still IN_QUEUE is cancelled.
    deadline_at: datetime
    # Run limit: a request IN_PROGRESS this long is cancelled (0: none).
    run_limit_seconds: int = 0
    status: QueueStatusName = "IN_QUEUE"
    queue_position: int | None = None
    # The earliest the run can have started (the last look that saw it waiting): the poll
    # plan aims from it, so it never looks too late.
    in_progress_since: datetime | None = None
    # The first look that saw it running: the run limit counts from it, so a request that
    # waited long between two looks is never cancelled for time it spent in the queue.
    seen_running_at: datetime | None = None
    checked_at: datetime | None = None
    polls: int = 0
    next_poll_seconds: int = 1
    # What the model recently took (run_times.py) when this job was submitted; None: only
    # the configured guess was known.
    typical_run_seconds: float | None = None
    # How fast the queue moved ahead of this request, seconds per position (observed).
    seconds_per_position: float | None = None
    # The run as the queue reported it (metrics.inference_time) or as polls observed it.
    run_seconds: float | None = None
    # The jobs-table key the submit claimed (the event's object's execution_name), so
    # later steps free the job's concurrency slot under the same key.
    job_key: str | None = None
    completion_mode: Literal["poll", "webhook"] = "poll"
    webhook_wait_seconds: int = 0
    # The verified webhook's payload, when it came with one small enough to carry (a
    # state's payload is capped at 256 KB): collect then needs no second fetch.
    result: ModelResult | None = None


StateT = TypeVar("StateT")


class TaskEnvelope(BaseModel, Generic[StateT]):
    """What the state machine hands a task: the state so far and the execution's id.

    The ASL builds it as `{"job.$": "$", "execution_id.$": "$$.Execution.Id"}`.
    """

    job: StateT
    execution_id: str | None = None
