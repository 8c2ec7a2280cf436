"""Settings pieces that say how a job runs: its caps, its polls, what the submit checks
and sends, and which outputs are copied. config.py documents how they are read."""

from __future__ import annotations

import json
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from kontext_pipeline.core.errors import ConfigurationError, Reason
from kontext_pipeline.core.settings_base import SettingsPiece, blank_is_unset, split_hosts

# fal serves outputs from its CDN hosts; any other host is refused unless configured.
DEFAULT_OUTPUT_URL_HOSTS = ("fal.media", "fal.run", "fal.ai")

# The longest a request may wait in the model's queue: the model reads a presigned input
# when the request starts, and a URL signed with a Lambda role's session credentials dies
# with them, which AWS promises no longer than an hour (docs/decisions.md).
MAX_QUEUE_WAIT_SECONDS = 3600
# A request that starts at the very end of its allowed wait still reads its input.
PRESIGNED_INPUT_GRACE_SECONDS = 300


class ConcurrencyCapSettings(SettingsPiece):
    """Requests at the model at once: taken by the submit, freed by whoever ends the job."""

    max_concurrent_requests: int = Field(
        0,
        ge=0,
        description="Model requests at once at most; a job past it waits in the state "
        "machine (0 = no cap).",
    )


class DailyCapSettings(SettingsPiece):
    """Images per UTC day: counted by the submit alone."""

    max_images_per_day: int = Field(
        0,
        ge=0,
        description="Images submitted per UTC day at most; a job past it fails as "
        "budget_exceeded (0 = no cap).",
    )


class PollSettings(SettingsPiece):
    """How the state machine polls the model's queue."""

    poll_min_seconds: float = Field(
        2.0, gt=0, description="Shortest wait between two status polls."
    )
    poll_max_seconds: float = Field(
        30.0, gt=0, description="Longest wait between two status polls."
    )
    expected_model_seconds: float = Field(
        20.0,
        gt=0,
        description="First guess at the model's run time, until the jobs table has a recent "
        "one (what the model took lately is what the polls gather around).",
    )
    poll_inline_seconds: float = Field(
        10.0,
        ge=0,
        le=40,
        description="How long one CheckStatus keeps asking the queue itself (every 0.1 s) when "
        "the answer is due soon, before handing back to the state machine's Wait loop.",
    )

    @model_validator(mode="after")
    def _min_before_max(self) -> Self:
        if self.poll_min_seconds > self.poll_max_seconds:
            raise ValueError("poll_min_seconds must not exceed poll_max_seconds")
        return self


class SubmitSettings(SettingsPiece):
    """What the submit checks, sends and plans."""

    deadline_seconds: int = Field(
        900,
        ge=5,
        description="Run limit: a request running (IN_PROGRESS) this long is cancelled and "
        "fails as deadline_exceeded.",
    )
    queue_wait_seconds: int = Field(
        MAX_QUEUE_WAIT_SECONDS,
        ge=5,
        le=MAX_QUEUE_WAIT_SECONDS,
        description="Queue-wait limit: a request still waiting in the model's queue (IN_QUEUE) "
        "this long after submit is cancelled and fails as queue_wait_exceeded.",
    )
    completion_mode: Literal["poll", "webhook"] = Field(
        "poll",
        description="How a job learns its request finished: polling, or the model's signed "
        "webhook (polling stays as the fallback).",
    )
    webhook_url: str | None = Field(
        None, description="Public URL of the ReceiveWebhook function (webhook mode)."
    )
    webhook_wait_seconds: int = Field(
        120, ge=1, description="How long to wait for a webhook before falling back to polling."
    )
    input_transfer: Literal["presigned", "data_uri"] = Field(
        "presigned",
        description="How the model gets the input: a presigned S3 URL, or the bytes inline as a "
        "data: URI (for buckets the model cannot reach, e.g. the local emulation).",
    )
    max_input_bytes: int = Field(
        25 * 1024 * 1024, gt=0, description="Largest input image accepted."
    )
    max_input_pixels: int = Field(
        40_000_000, gt=0, description="Largest input image accepted, in pixels (width x height)."
    )
    default_prompt: str | None = Field(
        None, description="Prompt used when an upload carries none (no metadata, no sidecar)."
    )
    default_options: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object of model options applied before the upload's own metadata.",
    )

    @field_validator("default_prompt", mode="before")
    @classmethod
    def _submit_blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @property
    def presigned_input_seconds(self) -> int:
        """The input URL lives as long as the request may wait in the model's queue (the model
        reads it when the request starts), and a grace for the start itself."""
        return self.queue_wait_seconds + PRESIGNED_INPUT_GRACE_SECONDS

    def model_webhook_url(self) -> str | None:
        """Where the model sends its webhook: None when polling; required in webhook mode."""
        if self.completion_mode != "webhook":
            return None
        if not self.webhook_url:
            raise ConfigurationError(
                "COMPLETION_MODE is webhook but WEBHOOK_URL is not set",
                reason=Reason.MISSING_SETTING,
            )
        return self.webhook_url

    @field_validator("default_options", mode="before")
    @classmethod
    def _parse_options(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value


class OutputSettings(SettingsPiece):
    """Where outputs may be fetched from, and how large."""

    max_output_bytes: int = Field(
        100 * 1024 * 1024, gt=0, description="Largest output image copied."
    )
    output_url_hosts: tuple[str, ...] = Field(
        DEFAULT_OUTPUT_URL_HOSTS,
        description="Comma-separated hosts (and their subdomains) outputs may be fetched from.",
    )
    allow_http_output_urls: bool = Field(
        False, description="Accept http:// output URLs on allowed hosts (local emulator only)."
    )

    @field_validator("output_url_hosts", mode="before")
    @classmethod
    def _output_split_hosts(cls, value: Any) -> Any:
        return split_hosts(value)
