"""The clients a function needs, built once per cold start and only when first used.

Handlers get everything from here, so they never touch boto3 or httpx themselves, and the
local run and the tests can hand in clients of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from botocore.config import Config

from kontext_pipeline.api_key import resolve_api_key
from kontext_pipeline.budget import Budget
from kontext_pipeline.config import PipelineSettings, load_settings
from kontext_pipeline.errors import ConfigurationError, Reason
from kontext_pipeline.fal import FalQueueClient
from kontext_pipeline.fal_transport import FalEndpoint, RetryPolicy
from kontext_pipeline.ledger import JobLedger
from kontext_pipeline.notify import Notifier
from kontext_pipeline.outputs import OutputPolicy
from kontext_pipeline.polling import PollPlan
from kontext_pipeline.run_times import RecentRunTimes

if TYPE_CHECKING:
    # Imported where used: only the webhook and callback functions need them (and
    # cryptography), so the other functions' cold starts do not pay for them.
    from kontext_pipeline.callbacks import CallbackRules
    from kontext_pipeline.webhook_rendezvous import WebhookRendezvous
    from kontext_pipeline.webhook_signatures import JwksCache

# Standard retry mode: throttling and 5xx from AWS services are retried with backoff.
BOTO_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30
)


def required(value: str | None, variable: str) -> str:
    """A setting only some functions need, checked where it is first used."""
    if not value:
        raise ConfigurationError(f"{variable} is not set", reason=Reason.MISSING_SETTING)
    return value


@dataclass
class Runtime:
    settings: PipelineSettings = field(default_factory=load_settings)

    @cached_property
    def s3(self) -> Any:
        return boto3.client("s3", config=BOTO_CONFIG)

    @cached_property
    def sns(self) -> Any:
        return boto3.client("sns", config=BOTO_CONFIG)

    @cached_property
    def events(self) -> Any:
        return boto3.client("events", config=BOTO_CONFIG)

    @cached_property
    def stepfunctions(self) -> Any:
        return boto3.client("stepfunctions", config=BOTO_CONFIG)

    @cached_property
    def dynamodb(self) -> Any:
        return boto3.client("dynamodb", config=BOTO_CONFIG)

    @cached_property
    def ledger(self) -> JobLedger:
        return JobLedger(self.dynamodb, required(self.settings.jobs_table, "JOBS_TABLE"))

    @cached_property
    def webhook_rendezvous(self) -> WebhookRendezvous:
        from kontext_pipeline.webhook_rendezvous import WebhookRendezvous  # noqa: PLC0415 - see above

        return WebhookRendezvous(
            self.dynamodb, self.stepfunctions, required(self.settings.jobs_table, "JOBS_TABLE")
        )

    @cached_property
    def budget(self) -> Budget:
        return Budget(
            self.dynamodb,
            required(self.settings.jobs_table, "JOBS_TABLE"),
            max_images_per_day=self.settings.max_images_per_day,
            max_concurrent_requests=self.settings.max_concurrent_requests,
        )

    @cached_property
    def callback_rules(self) -> CallbackRules:
        from kontext_pipeline.callbacks import CallbackRules  # noqa: PLC0415 - see above

        return CallbackRules(
            allowed_hosts=self.settings.callback_url_hosts,
            allow_loopback=self.settings.callback_allow_loopback,
        )

    def callback_signing_key(self) -> bytes:
        """Per call: from the Parameters cache, so a rotated secret lands within minutes."""
        from kontext_pipeline.callbacks import resolve_signing_key  # noqa: PLC0415

        return resolve_signing_key(
            required(self.settings.callback_secret_id, "CALLBACK_SECRET_ID"), self.secretsmanager
        )

    @cached_property
    def jwks(self) -> JwksCache:
        from kontext_pipeline.webhook_signatures import JwksCache  # noqa: PLC0415 - see above

        return JwksCache(self.http, self.settings.webhook_jwks_url)

    def notifier(self, lambda_context: Any = None) -> Notifier:
        return Notifier(
            sns=self.sns,
            topic_arn=required(self.settings.topic_arn, "TOPIC_ARN"),
            events=self.events,
            event_bus_name=self.settings.event_bus_name,
            dynamodb=self.dynamodb,
            table_name=required(self.settings.jobs_table, "JOBS_TABLE"),
            lambda_context=lambda_context,
        )

    @cached_property
    def secretsmanager(self) -> Any:
        return boto3.client("secretsmanager", config=BOTO_CONFIG)

    @cached_property
    def http(self) -> httpx.Client:
        timeout = httpx.Timeout(
            self.settings.http_read_timeout_seconds,
            connect=self.settings.http_connect_timeout_seconds,
        )
        # Redirects are not followed: a redirect could lead the API key or a download elsewhere.
        return httpx.Client(timeout=timeout, follow_redirects=False)

    def fal(self) -> FalQueueClient:
        """Built per call: the key comes from the Parameters cache, so a rotation lands."""
        key = resolve_api_key(self.settings, self.secretsmanager)
        return FalQueueClient(
            self.http,
            FalEndpoint(
                base_url=self.settings.fal_base_url,
                model_path=self.settings.fal_model_path,
                api_key=key.get_secret_value() if key else None,
                auth_header=self.settings.fal_auth_header,
                auth_scheme=self.settings.fal_auth_scheme,
            ),
            retry=RetryPolicy(max_attempts=self.settings.fal_max_attempts),
        )

    @cached_property
    def poll_plan(self) -> PollPlan:
        return PollPlan(
            min_seconds=self.settings.poll_min_seconds,
            max_seconds=self.settings.poll_max_seconds,
            expected_model_seconds=self.settings.expected_model_seconds,
            inline_budget_seconds=self.settings.poll_inline_seconds,
        )

    @cached_property
    def run_times(self) -> RecentRunTimes:
        return RecentRunTimes(
            self.dynamodb,
            required(self.settings.jobs_table, "JOBS_TABLE"),
            self.settings.fal_model_path,
        )

    @cached_property
    def output_policy(self) -> OutputPolicy:
        # Files on the queue's own origin are accepted too: that queue has the key already.
        return OutputPolicy.for_queue(
            self.settings.fal_base_url,
            allowed_hosts=self.settings.output_url_hosts,
            allow_http=self.settings.allow_http_output_urls,
            max_bytes=self.settings.max_output_bytes,
        )
