"""Settings from the environment, validated once at cold start.

template.yaml sets these as Lambda environment variables; the local run sets the same
names. Every field is documented here, and the README's configuration reference is
generated from this model, so this is the one place an option is defined.

Plain pydantic over `os.environ` (upper-case names, read case-insensitively): the
variables are flat strings, so pydantic-settings' sources and JSON decoding add nothing
but its import (about 30 ms of every cold start).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kontext_pipeline.core.errors import ConfigurationError

DEFAULT_FAL_BASE_URL = "https://queue.fal.run"
DEFAULT_FAL_MODEL_PATH = "fal-ai/flux-pro/kontext/max"
# fal serves outputs from its CDN hosts; any other host is refused unless configured.
DEFAULT_OUTPUT_URL_HOSTS = ("fal.media", "fal.run", "fal.ai")


# The longest a request may wait in the model's queue: the model reads a presigned input
# when the request starts, and a URL signed with a Lambda role's session credentials dies
# with them, which AWS promises no longer than an hour (docs/decisions.md).
MAX_QUEUE_WAIT_SECONDS = 3600


class PipelineSettings(BaseModel):
    """Everything the functions read from their environment."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    input_prefix: str = Field(
        "inputs/", description="Key prefix the pipeline listens on for uploaded images."
    )
    output_prefix: str = Field(
        "outputs/", description="Key prefix outputs and manifests are written under."
    )
    output_bucket: str | None = Field(
        None, description="Bucket for outputs; empty means the input object's own bucket."
    )
    topic_arn: str | None = Field(
        None, description="SNS topic that receives one notification per job."
    )
    event_bus_name: str = Field(
        "default", description="EventBridge bus that receives each job's outcome event."
    )
    jobs_table: str | None = Field(
        None, description="DynamoDB table recording each job's submit (and webhook tokens)."
    )
    state_machine_arn: str | None = Field(
        None, description="State machine the trigger starts (set on the trigger function only)."
    )
    fal_base_url: str = Field(
        DEFAULT_FAL_BASE_URL,
        description="Base URL of the model's queue; the API key is only ever sent to this host.",
    )
    fal_model_path: str = Field(DEFAULT_FAL_MODEL_PATH, description="Model path under the base.")
    fal_auth_header: str = Field("Authorization", description="Header that carries the API key.")
    fal_auth_scheme: str = Field(
        "Key", description="Scheme word before the key in that header; empty for a bare key."
    )
    fal_key_secret_id: str | None = Field(
        None, description="Secrets Manager id of the API key (plain string or JSON {FAL_KEY})."
    )
    fal_key: SecretStr | None = Field(
        None, description="The API key itself; for local runs only, never set in the template."
    )
    fal_max_attempts: int = Field(
        5, ge=1, le=10, description="Attempts per queue call on 408/409/429/502/503/504."
    )
    http_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="Connect timeout for every outbound HTTP call."
    )
    http_read_timeout_seconds: float = Field(
        30.0, gt=0, description="Read timeout for every outbound HTTP call."
    )
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
    poll_inline_seconds: float = Field(
        10.0,
        ge=0,
        le=40,
        description="How long one CheckStatus keeps asking the queue itself (every 0.1 s) when "
        "the answer is due soon, before handing back to the state machine's Wait loop.",
    )
    completion_mode: Literal["poll", "webhook"] = Field(
        "poll",
        description="How a job learns its request finished: polling, or the model's signed "
        "webhook (polling stays as the fallback).",
    )
    webhook_url: str | None = Field(
        None, description="Public URL of the ReceiveWebhook function (webhook mode)."
    )
    webhook_jwks_url: str = Field(
        "https://rest.fal.ai/.well-known/jwks.json",
        description="JWKS with the model's webhook signing keys.",
    )
    fal_user_id: str | None = Field(
        None,
        description="Our fal account's user id: when set, a webhook signed for another "
        "account (x-fal-webhook-user-id) is refused.",
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
    default_prompt: str | None = Field(
        None, description="Prompt used when an upload carries none (no metadata, no sidecar)."
    )
    default_options: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object of model options applied before the upload's own metadata.",
    )

    max_images_per_day: int = Field(
        0,
        ge=0,
        description="Images submitted per UTC day at most; a job past it fails as "
        "budget_exceeded (0 = no cap).",
    )
    max_concurrent_requests: int = Field(
        0,
        ge=0,
        description="Model requests at once at most; a job past it waits in the state "
        "machine (0 = no cap).",
    )
    callback_url_hosts: tuple[str, ...] = Field(
        (),
        description="Comma-separated hosts (and their subdomains) a job's callback-url may "
        "name, on port 443, or host:port for another port; empty refuses every callback.",
    )
    callback_ipv6_egress: bool = Field(
        False,
        description="The function can reach IPv6 addresses (a dual-stack VPC): callbacks to "
        "receivers with IPv6 addresses only are made. IPv4 is used whenever there is one.",
    )
    callback_allow_loopback: bool = Field(
        False,
        description="Accept callback URLs on 127.0.0.1 over plain HTTP: the local run sets "
        "it; the deployable template cannot.",
    )
    callback_secret_id: str | None = Field(
        None, description="Secrets Manager id of the callbacks' Standard Webhooks signing secret."
    )

    @field_validator("input_prefix", "output_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.lstrip("/")
        if not value:
            raise ValueError("must not be empty: the pipeline never listens on a whole bucket")
        return value if value.endswith("/") else value + "/"

    @field_validator(
        "fal_key",
        "fal_key_secret_id",
        "output_bucket",
        "default_prompt",
        "callback_secret_id",
        "fal_user_id",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("output_url_hosts", "callback_url_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(host.strip().lower() for host in value.split(",") if host.strip())
        return value

    @field_validator("default_options", mode="before")
    @classmethod
    def _parse_options(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("fal_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("fal_model_path")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @model_validator(mode="after")
    def _prefixes_do_not_overlap(self) -> PipelineSettings:
        # Outputs written where the trigger listens would start the pipeline on its own
        # outputs, forever (AWS's recursion detection does not see loops through Step Functions).
        same_bucket = self.output_bucket is None
        a, b = self.input_prefix, self.output_prefix
        if same_bucket and (a.startswith(b) or b.startswith(a)):
            raise ValueError(
                f"output_prefix {b!r} overlaps input_prefix {a!r}: outputs would re-trigger "
                "the pipeline"
            )
        if self.poll_min_seconds > self.poll_max_seconds:
            raise ValueError("poll_min_seconds must not exceed poll_max_seconds")
        return self


def environment_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each setting's variable from the environment, by its name in any case."""
    source = os.environ if environ is None else environ
    by_name = {key.lower(): value for key, value in source.items()}
    return {name: by_name[name] for name in PipelineSettings.model_fields if name in by_name}


def load_settings(**overrides: Any) -> PipelineSettings:
    """Read and validate the environment; a bad deployment fails loudly at cold start."""
    try:
        return PipelineSettings(**{**environment_values(), **overrides})
    except ValueError as exc:
        raise ConfigurationError(f"invalid pipeline settings: {exc}") from exc
