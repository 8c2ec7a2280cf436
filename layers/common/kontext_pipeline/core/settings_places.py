"""Settings pieces that say where things are: the model and its queue, the bucket's
prefixes, the table, the topic and bus, the state machine, webhook and callback endpoints.
config.py documents how they are read and combined."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from kontext_pipeline.core.settings_base import SettingsPiece, blank_is_unset, split_hosts

DEFAULT_FAL_BASE_URL = "https://queue.fal.run"
DEFAULT_FAL_MODEL_PATH = "fal-ai/flux-pro/kontext/max"


class ModelSettings(SettingsPiece):
    """The model every metric names as a dimension: every function reads it."""

    fal_model_path: str = Field(DEFAULT_FAL_MODEL_PATH, description="Model path under the base.")

    @field_validator("fal_model_path")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")


class HttpSettings(SettingsPiece):
    """Timeouts of every outbound HTTP call."""

    http_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="Connect timeout for every outbound HTTP call."
    )
    http_read_timeout_seconds: float = Field(
        30.0, gt=0, description="Read timeout for every outbound HTTP call."
    )


class ModelQueueSettings(SettingsPiece):
    """The model's queue and its key."""

    fal_base_url: str = Field(
        DEFAULT_FAL_BASE_URL,
        description="Base URL of the model's queue; the API key is only ever sent to this host.",
    )
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

    @field_validator("fal_key", "fal_key_secret_id", mode="before")
    @classmethod
    def _model_queue_blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @field_validator("fal_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class ScopeSettings(SettingsPiece):
    """Where the pipeline listens and writes."""

    input_prefix: str = Field(
        "inputs/", description="Key prefix the pipeline listens on for uploaded images."
    )
    output_prefix: str = Field(
        "outputs/", description="Key prefix outputs and manifests are written under."
    )
    output_bucket: str | None = Field(
        None, description="Bucket for outputs; empty means the input object's own bucket."
    )

    @field_validator("input_prefix", "output_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.lstrip("/")
        if not value:
            raise ValueError("must not be empty: the pipeline never listens on a whole bucket")
        return value if value.endswith("/") else value + "/"

    @field_validator("output_bucket", mode="before")
    @classmethod
    def _scope_blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @model_validator(mode="after")
    def _prefixes_do_not_overlap(self) -> Self:
        # Outputs written where the trigger listens would start the pipeline on its own
        # outputs, forever (AWS's recursion detection does not see loops through Step Functions).
        same_bucket = self.output_bucket is None
        a, b = self.input_prefix, self.output_prefix
        if same_bucket and (a.startswith(b) or b.startswith(a)):
            raise ValueError(
                f"output_prefix {b!r} overlaps input_prefix {a!r}: outputs would re-trigger "
                "the pipeline"
            )
        return self


class TriggerSettings(SettingsPiece):
    """The state machine the trigger and the backfill start."""

    state_machine_arn: str | None = Field(
        None, description="State machine the trigger starts (set on the trigger function only)."
    )


class JobsTableSettings(SettingsPiece):
    """The jobs table."""

    jobs_table: str | None = Field(
        None, description="DynamoDB table recording each job's submit (and webhook tokens)."
    )


class EventBusSettings(SettingsPiece):
    """The bus the pipeline's events go on."""

    event_bus_name: str = Field(
        "default", description="EventBridge bus that receives each job's outcome event."
    )


class NotificationSettings(SettingsPiece):
    """The topic every job's notification goes to."""

    topic_arn: str | None = Field(
        None, description="SNS topic that receives one notification per job."
    )


class WebhookSettings(SettingsPiece):
    """How the model's webhooks are checked."""

    webhook_jwks_url: str = Field(
        "https://rest.fal.ai/.well-known/jwks.json",
        description="JWKS with the model's webhook signing keys.",
    )
    fal_user_id: str | None = Field(
        None,
        description="Our fal account's user id: when set, a webhook signed for another "
        "account (x-fal-webhook-user-id) is refused.",
    )

    @field_validator("fal_user_id", mode="before")
    @classmethod
    def _webhook_blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)


class CallbackSettings(SettingsPiece):
    """Which callback URLs may be called, and the key that signs them."""

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

    @field_validator("callback_secret_id", mode="before")
    @classmethod
    def _callback_blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @field_validator("callback_url_hosts", mode="before")
    @classmethod
    def _callback_split_hosts(cls, value: Any) -> Any:
        return split_hosts(value)


class IntakePolicySettings(SettingsPiece):
    """The HTTP front door (functions/intake): where it puts images, which image URLs it
    fetches, how large an image it takes, and who may call it."""

    images_bucket: str | None = Field(
        None, description="Bucket the intake puts images into, under INPUT_PREFIX."
    )
    intake_url_hosts: tuple[str, ...] = Field(
        (),
        description="Comma-separated hosts (and their subdomains) an image_url may name; "
        "empty admits any host on 443 whose addresses are all public.",
    )
    intake_allow_loopback: bool = Field(
        False,
        description="Accept image URLs on 127.0.0.1 over plain HTTP: the local run sets it; "
        "the deployable template cannot.",
    )
    intake_max_image_bytes: int = Field(
        25 * 1024 * 1024,
        gt=0,
        description="Largest image the intake fetches or lets be uploaded (as MAX_INPUT_BYTES: "
        "a larger one would fail at submit).",
    )
    intake_auth: Literal["key", "iam"] = Field(
        "key",
        description="`key`: callers send an API key (`kontext-pipeline api-key create`); "
        "`iam`: the function URL takes AWS_IAM-signed requests instead.",
    )

    @field_validator("images_bucket", mode="before")
    @classmethod
    def _intake_blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @field_validator("intake_url_hosts", mode="before")
    @classmethod
    def _intake_split_hosts(cls, value: Any) -> Any:
        return split_hosts(value)
