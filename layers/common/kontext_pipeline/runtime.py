"""The clients and policies a function needs, built once per cold start, when first used
(the model queue's small client is made per call, around the cached API key, so that a
rotated key lands).

Handlers get everything from here, so they never touch boto3 or httpx themselves, and the
tests can hand in a Runtime of their own (`lambda_handler(event, context, runtime)`).
A Runtime holds its function's own settings model (the pieces it reads, core/config.py);
each member asks for the piece it is built from, so a function whose settings lack it
fails with the piece's name instead of reading a default it was never given.

The members import their modules on first use (ruff's PLC0415 is off for this file):
only the functions that need them load them (the webhook and callback modules bring
cryptography, the notifier Powertools Idempotency, the queue client its transport), so
the others' cold starts do not pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import boto3
import httpx
from botocore.config import Config

from kontext_pipeline.core.aws_clients import AwsClient
from kontext_pipeline.core.config import (
    CallbackSettings,
    ConcurrencyCapSettings,
    DailyCapSettings,
    EventBusSettings,
    HttpSettings,
    IntakePolicySettings,
    JobsTableSettings,
    ModelQueueSettings,
    ModelSettings,
    NotificationSettings,
    OutputSettings,
    PollSettings,
    ScopeSettings,
    SettingsPiece,
    SubmitSettings,
    TriggerSettings,
    WebhookSettings,
)
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
    from kontext_pipeline.intake.routes import IntakeApi
    from kontext_pipeline.jobs.store import JobsStore
    from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous
    from kontext_pipeline.model_queue.poll_plan import PollPlan
    from kontext_pipeline.model_queue.webhooks import JwksCache
    from kontext_pipeline.notifications.callbacks import CallbackRules
    from kontext_pipeline.notifications.publish import Notifier
    from kontext_pipeline.steps.start_edit import JobStarter
    from kontext_pipeline.storage.output_origins import OutputPolicy

# Standard retry mode: throttling and 5xx from AWS services are retried with backoff.
BOTO_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30
)

# S3 signs presigned URLs and upload forms with Signature Version 4: AWS has turned SigV2
# off for new buckets, and some SDK versions still default to it for upload forms.
CLIENT_CONFIGS = {"s3": BOTO_CONFIG.merge(Config(signature_version="s3v4"))}


def required(value: str | None, variable: str) -> str:
    """A setting only some functions need, checked where it is first used."""
    if not value:
        raise ConfigurationError(f"{variable} is not set", reason=Reason.MISSING_SETTING)
    return value


SettingsT = TypeVar("SettingsT", bound=SettingsPiece)
PieceT = TypeVar("PieceT", bound=SettingsPiece)


@dataclass
class Runtime(Generic[SettingsT]):
    settings: SettingsT
    # A model queue handed in (the tests); else model_queue() builds the client per call.
    queue_override: ModelQueue | None = None

    # boto3 clients, each built when first used, then kept.
    s3: ClassVar[AwsClient[S3Client]] = AwsClient("s3")
    sns: ClassVar[AwsClient[SNSClient]] = AwsClient("sns")
    events: ClassVar[AwsClient[EventBridgeClient]] = AwsClient("events")
    stepfunctions: ClassVar[AwsClient[SFNClient]] = AwsClient("stepfunctions")
    dynamodb: ClassVar[AwsClient[DynamoDBClient]] = AwsClient("dynamodb")
    secretsmanager: ClassVar[AwsClient[SecretsManagerClient]] = AwsClient("secretsmanager")

    def make_client(self, service: str) -> object:
        return boto3.client(service, config=CLIENT_CONFIGS.get(service, BOTO_CONFIG))

    def piece(self, kind: type[PieceT]) -> PieceT:
        """The function's settings as the piece `kind`; a function not given it fails here."""
        if not isinstance(self.settings, kind):
            raise ConfigurationError(
                f"{type(self.settings).__name__} has no {kind.__name__}",
                reason=Reason.MISSING_SETTING,
            )
        return self.settings

    @property
    def jobs_table(self) -> str:
        return required(self.piece(JobsTableSettings).jobs_table, "JOBS_TABLE")

    @cached_property
    def jobs(self) -> JobsStore:
        """The jobs table; a cap this function is not given is no cap (it never takes one)."""
        from kontext_pipeline.jobs.store import JobsStore

        settings = self.settings
        return JobsStore(
            self.dynamodb,
            self.jobs_table,
            model_path=self.piece(ModelSettings).fal_model_path,
            max_images_per_day=(
                settings.max_images_per_day if isinstance(settings, DailyCapSettings) else 0
            ),
            max_concurrent_requests=(
                settings.max_concurrent_requests
                if isinstance(settings, ConcurrencyCapSettings)
                else 0
            ),
        )

    @cached_property
    def webhook_rendezvous(self) -> WebhookRendezvous:
        from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous

        return WebhookRendezvous(self.dynamodb, self.stepfunctions, self.jobs_table)

    @cached_property
    def callback_rules(self) -> CallbackRules:
        from kontext_pipeline.notifications.callbacks import CallbackRules

        settings = self.piece(CallbackSettings)
        return CallbackRules(
            allowed_hosts=settings.callback_url_hosts,
            allow_loopback=settings.callback_allow_loopback,
            ipv6_egress=settings.callback_ipv6_egress,
        )

    def callback_signing_key(self) -> bytes:
        """Per call: from the Parameters cache, so a rotated secret lands within minutes."""
        from kontext_pipeline.notifications.callbacks import resolve_signing_key

        secret_id = self.piece(CallbackSettings).callback_secret_id
        return resolve_signing_key(required(secret_id, "CALLBACK_SECRET_ID"), self.secrets)

    @cached_property
    def secrets(self) -> SecretStore:
        """One store per warm function: its cache is what makes the per-call reads cheap."""
        from kontext_pipeline.core.secrets import SecretStore

        return SecretStore(self.secretsmanager)

    @cached_property
    def jwks(self) -> JwksCache:
        from kontext_pipeline.model_queue.webhooks import JwksCache

        return JwksCache(self.http, self.piece(WebhookSettings).webhook_jwks_url)

    def notifier(self, lambda_context: LambdaContext | None = None) -> Notifier:
        """The function's one Notifier, with this invocation's context registered."""
        if lambda_context is not None:
            self._notifier.register_lambda_context(lambda_context)
        return self._notifier

    @cached_property
    def _notifier(self) -> Notifier:
        from kontext_pipeline.notifications.publish import Notifier

        return Notifier(
            sns=self.sns,
            topic_arn=required(self.piece(NotificationSettings).topic_arn, "TOPIC_ARN"),
            events=self.events,
            event_bus_name=self.piece(EventBusSettings).event_bus_name,
            dynamodb=self.dynamodb,
            table_name=self.jobs_table,
        )

    @cached_property
    def http(self) -> httpx.Client:
        settings = self.piece(HttpSettings)
        timeout = httpx.Timeout(
            settings.http_read_timeout_seconds, connect=settings.http_connect_timeout_seconds
        )
        # Redirects are not followed: a redirect could lead the API key or a download elsewhere.
        return httpx.Client(timeout=timeout, follow_redirects=False)

    def model_queue(self) -> ModelQueue:
        """Built per call: the key comes from the Parameters cache, so a rotation lands.

        A queue handed in (`queue_override`: the tests) is used instead.
        """
        from kontext_pipeline.model_queue.api_key import resolve_api_key
        from kontext_pipeline.model_queue.client import FalQueueClient
        from kontext_pipeline.model_queue.transport import FalEndpoint, RetryPolicy

        if self.queue_override is not None:
            return self.queue_override
        settings = self.piece(ModelQueueSettings)
        key = resolve_api_key(settings, self.secrets)
        return FalQueueClient(
            self.http,
            FalEndpoint(
                base_url=settings.fal_base_url,
                model_path=self.piece(ModelSettings).fal_model_path,
                api_key=key.get_secret_value() if key else None,
                auth_header=settings.fal_auth_header,
                auth_scheme=settings.fal_auth_scheme,
            ),
            retry=RetryPolicy(max_attempts=settings.fal_max_attempts),
        )

    @cached_property
    def poll_plan(self) -> PollPlan:
        from kontext_pipeline.model_queue.poll_plan import PollPlan

        settings = self.piece(PollSettings)
        return PollPlan(
            min_seconds=settings.poll_min_seconds,
            max_seconds=settings.poll_max_seconds,
            expected_model_seconds=settings.expected_model_seconds,
            inline_budget_seconds=settings.poll_inline_seconds,
        )

    @cached_property
    def output_policy(self) -> OutputPolicy:
        from kontext_pipeline.storage.output_origins import OutputPolicy

        settings = self.piece(OutputSettings)
        # Files on the queue's own origin are accepted too: that queue has the key already.
        return OutputPolicy.for_queue(
            self.piece(ModelQueueSettings).fal_base_url,
            allowed_hosts=settings.output_url_hosts,
            allow_http=settings.allow_http_output_urls,
            max_bytes=settings.max_output_bytes,
        )

    @cached_property
    def edit_scope(self) -> EditScope:
        settings = self.piece(ScopeSettings)
        return EditScope(settings.input_prefix, settings.output_prefix, settings.output_bucket)

    @cached_property
    def job_starter(self) -> JobStarter:
        from kontext_pipeline.steps.start_edit import JobStarter

        arn = required(self.piece(TriggerSettings).state_machine_arn, "STATE_MACHINE_ARN")
        return JobStarter(self.stepfunctions, arn)

    @property
    def submit_policy(self) -> SubmitSettings:
        return self.piece(SubmitSettings)

    @cached_property
    def intake_api(self) -> IntakeApi:
        from kontext_pipeline.intake.api_keys import ApiKeys
        from kontext_pipeline.intake.edits import IntakeDeps
        from kontext_pipeline.intake.image_fetch import FetchLimits
        from kontext_pipeline.intake.routes import IntakeApi
        from kontext_pipeline.notifications.callbacks import CallbackRules

        settings = self.piece(IntakePolicySettings)
        image_rules = CallbackRules(
            settings.intake_url_hosts,
            allow_loopback=settings.intake_allow_loopback,
            any_public_host=True,
            hosts_setting="IntakeUrlHosts",
        )
        deps = IntakeDeps(
            s3=self.s3,
            dynamodb=self.dynamodb,
            table_name=self.jobs_table,
            bucket=required(settings.images_bucket, "IMAGES_BUCKET"),
            input_prefix=self.edit_scope.input_prefix,
            http=self.http,
            image_rules=image_rules,
            limits=FetchLimits(max_bytes=settings.intake_max_image_bytes),
        )
        return IntakeApi(deps, ApiKeys(self.dynamodb, self.jobs_table), settings.intake_auth)
