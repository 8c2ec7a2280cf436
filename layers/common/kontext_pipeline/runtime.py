"""The clients and policies a function needs, built once per cold start, when first used
(the model queue's small client is made per call, around the cached API key, so that a
rotated key lands).

Handlers get everything from here, so they never touch boto3 or httpx themselves, and the
tests can hand in a Runtime of their own (`lambda_handler(event, context, runtime)`). The
policies are the few settings each step reads, so no step sees the whole settings model;
a handler reads a setting itself only where it passes one value on (the callback's bus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import boto3
import httpx
from botocore.config import Config

from kontext_pipeline.core.aws_clients import AwsClient
from kontext_pipeline.core.config import PipelineSettings, load_settings
from kontext_pipeline.core.errors import ConfigurationError, Reason
from kontext_pipeline.core.protocols import ModelQueue
from kontext_pipeline.storage.scope import EditScope

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_s3.client import S3Client
    from types_boto3_secretsmanager.client import SecretsManagerClient
    from types_boto3_sns.client import SNSClient
    from types_boto3_stepfunctions.client import SFNClient

    from kontext_pipeline.core.secrets import SecretStore

    # Imported where used: only the functions that need them load them (the webhook and
    # callback modules bring cryptography, the notifier Powertools Idempotency, the queue
    # client its transport), so the others' cold starts do not pay for them.
    from kontext_pipeline.jobs.budget import Budget
    from kontext_pipeline.jobs.ledger import JobLedger
    from kontext_pipeline.jobs.run_times import RecentRunTimes
    from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous
    from kontext_pipeline.model_queue.poll_plan import PollPlan
    from kontext_pipeline.model_queue.webhooks import JwksCache
    from kontext_pipeline.notifications.callbacks import CallbackRules
    from kontext_pipeline.notifications.publish import Notifier
    from kontext_pipeline.steps.start_edit import JobStarter
    from kontext_pipeline.steps.submit_edit import SubmitPolicy
    from kontext_pipeline.storage.output_origins import OutputPolicy

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
    # A model queue handed in (the tests); else fal() builds the client from the settings.
    model_queue: ModelQueue | None = None

    # boto3 clients, each built when first used, then kept.
    s3: ClassVar[AwsClient[S3Client]] = AwsClient("s3")
    sns: ClassVar[AwsClient[SNSClient]] = AwsClient("sns")
    events: ClassVar[AwsClient[EventBridgeClient]] = AwsClient("events")
    stepfunctions: ClassVar[AwsClient[SFNClient]] = AwsClient("stepfunctions")
    dynamodb: ClassVar[AwsClient[DynamoDBClient]] = AwsClient("dynamodb")
    secretsmanager: ClassVar[AwsClient[SecretsManagerClient]] = AwsClient("secretsmanager")

    def make_client(self, service: str) -> object:
        return boto3.client(service, config=BOTO_CONFIG)

    @property
    def jobs_table(self) -> str:
        return required(self.settings.jobs_table, "JOBS_TABLE")

    @cached_property
    def ledger(self) -> JobLedger:
        from kontext_pipeline.jobs.ledger import JobLedger  # noqa: PLC0415 - see above

        return JobLedger(self.dynamodb, self.jobs_table)

    @cached_property
    def webhook_rendezvous(self) -> WebhookRendezvous:
        from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous  # noqa: PLC0415 - see above

        return WebhookRendezvous(self.dynamodb, self.stepfunctions, self.jobs_table)

    @cached_property
    def budget(self) -> Budget:
        from kontext_pipeline.jobs.budget import Budget  # noqa: PLC0415 - see above

        return Budget(
            self.dynamodb,
            self.jobs_table,
            max_images_per_day=self.settings.max_images_per_day,
            max_concurrent_requests=self.settings.max_concurrent_requests,
        )

    @cached_property
    def slots(self) -> Budget:
        """The budget as the steps after the submit see it: they only free the job's slot
        (the daily image cap is SubmitEdit's alone, so these functions are not given it)."""
        from kontext_pipeline.jobs.budget import Budget  # noqa: PLC0415 - see above

        return Budget(
            self.dynamodb,
            self.jobs_table,
            max_concurrent_requests=self.settings.max_concurrent_requests,
        )

    @cached_property
    def callback_rules(self) -> CallbackRules:
        from kontext_pipeline.notifications.callbacks import CallbackRules  # noqa: PLC0415 - see above

        return CallbackRules(
            allowed_hosts=self.settings.callback_url_hosts,
            allow_loopback=self.settings.callback_allow_loopback,
            ipv6_egress=self.settings.callback_ipv6_egress,
        )

    def callback_signing_key(self) -> bytes:
        """Per call: from the Parameters cache, so a rotated secret lands within minutes."""
        from kontext_pipeline.notifications.callbacks import resolve_signing_key  # noqa: PLC0415

        return resolve_signing_key(
            required(self.settings.callback_secret_id, "CALLBACK_SECRET_ID"), self.secrets
        )

    @cached_property
    def secrets(self) -> SecretStore:
        """One store per warm function: its cache is what makes the per-call reads cheap."""
        from kontext_pipeline.core.secrets import SecretStore  # noqa: PLC0415 - see above

        return SecretStore(self.secretsmanager)

    @cached_property
    def jwks(self) -> JwksCache:
        from kontext_pipeline.model_queue.webhooks import JwksCache  # noqa: PLC0415 - see above

        return JwksCache(self.http, self.settings.webhook_jwks_url)

    def notifier(self, lambda_context: LambdaContext | None = None) -> Notifier:
        """The function's one Notifier, with this invocation's context registered."""
        if lambda_context is not None:
            self._notifier.register_lambda_context(lambda_context)
        return self._notifier

    @cached_property
    def _notifier(self) -> Notifier:
        from kontext_pipeline.notifications.publish import Notifier  # noqa: PLC0415 - see above

        return Notifier(
            sns=self.sns,
            topic_arn=required(self.settings.topic_arn, "TOPIC_ARN"),
            events=self.events,
            event_bus_name=self.settings.event_bus_name,
            dynamodb=self.dynamodb,
            table_name=self.jobs_table,
        )

    @cached_property
    def http(self) -> httpx.Client:
        timeout = httpx.Timeout(
            self.settings.http_read_timeout_seconds,
            connect=self.settings.http_connect_timeout_seconds,
        )
        # Redirects are not followed: a redirect could lead the API key or a download elsewhere.
        return httpx.Client(timeout=timeout, follow_redirects=False)

    def fal(self) -> ModelQueue:
        """Built per call: the key comes from the Parameters cache, so a rotation lands.

        A queue handed in (`model_queue`: the tests) is used instead.
        """
        from kontext_pipeline.model_queue.api_key import resolve_api_key  # noqa: PLC0415 - see above
        from kontext_pipeline.model_queue.client import FalQueueClient  # noqa: PLC0415 - see above
        from kontext_pipeline.model_queue.transport import FalEndpoint, RetryPolicy  # noqa: PLC0415 - see above

        if self.model_queue is not None:
            return self.model_queue
        key = resolve_api_key(self.settings, self.secrets)
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
        from kontext_pipeline.model_queue.poll_plan import PollPlan  # noqa: PLC0415 - see above

        return PollPlan(
            min_seconds=self.settings.poll_min_seconds,
            max_seconds=self.settings.poll_max_seconds,
            expected_model_seconds=self.settings.expected_model_seconds,
            inline_budget_seconds=self.settings.poll_inline_seconds,
        )

    @cached_property
    def run_times(self) -> RecentRunTimes:
        from kontext_pipeline.jobs.run_times import RecentRunTimes  # noqa: PLC0415 - see above

        return RecentRunTimes(self.dynamodb, self.jobs_table, self.settings.fal_model_path)

    @cached_property
    def output_policy(self) -> OutputPolicy:
        from kontext_pipeline.storage.output_origins import OutputPolicy  # noqa: PLC0415 - see above

        # Files on the queue's own origin are accepted too: that queue has the key already.
        return OutputPolicy.for_queue(
            self.settings.fal_base_url,
            allowed_hosts=self.settings.output_url_hosts,
            allow_http=self.settings.allow_http_output_urls,
            max_bytes=self.settings.max_output_bytes,
        )

    @cached_property
    def edit_scope(self) -> EditScope:
        return EditScope(
            self.settings.input_prefix, self.settings.output_prefix, self.settings.output_bucket
        )

    @cached_property
    def job_starter(self) -> JobStarter:
        from kontext_pipeline.steps.start_edit import JobStarter  # noqa: PLC0415 - see above

        arn = required(self.settings.state_machine_arn, "STATE_MACHINE_ARN")
        return JobStarter(self.stepfunctions, arn)

    @cached_property
    def submit_policy(self) -> SubmitPolicy:
        from kontext_pipeline.steps.submit_edit import SubmitPolicy  # noqa: PLC0415 - see above

        return SubmitPolicy.from_settings(self.settings)
