"""The whole pipeline on this machine: moto in-process + the model-queue emulator on 127.0.0.1.

    with LocalPipeline() as pipeline:
        source = pipeline.upload(Path("photo.jpg"), prompt="make it snow")
        message = pipeline.wait_for_notification(source)

`template.yaml` and the ASL file are deployed as they are (see stack.py); S3 notifications
and state machine tasks run the real handlers in-process (see lambdas.py); the state
machine runs on moto's ASL interpreter; an SQS queue subscribed to the topic receives the
notifications, as a downstream consumer would.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kontext_pipeline.models import Notification, SourceObject

from kontext_tools.deployed import (
    JobProgress,
    download_results,
    find_execution,
    job_progress,
    upload_image,
)
from kontext_tools.local.gateway import FunctionUrlGateway
from kontext_tools.local.lambdas import InProcessLambdas
from kontext_tools.local.stack import REGION, LocalStack, deploy_stack

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"

# The template's parameters, tuned for a machine-local run: the emulator's model takes
# about a second, so poll every second rather than every 2-30 s.
LOCAL_PARAMETERS = {
    "PollMinSeconds": "1",
    "PollMaxSeconds": "5",
    "ExpectedModelSeconds": "1",
    "DeadlineSeconds": "120",
    "LogLevel": "WARNING",
}
# Local-only environment: no X-Ray daemon or CloudWatch agent here.
LOCAL_ENVIRONMENT = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}


@dataclass(frozen=True)
class ReceivedNotification:
    """An SNS notification as the subscribed SQS queue received it."""

    envelope: dict[str, Any]
    notification: Notification


class LocalPipeline:
    """Stand the application up locally; use as a context manager."""

    def __init__(
        self,
        *,
        template_path: Path = TEMPLATE_PATH,
        fal_base_url: str | None = None,
        fal_key: str | None = None,
        emulator_timing: Any = None,
        parameters: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.template_path = template_path
        self._external_fal = fal_base_url
        self._fal_key = fal_key
        self._emulator_timing = emulator_timing
        self._parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self._environment = {**LOCAL_ENVIRONMENT, **(environment or {})}
        self._exit = ExitStack()
        self.emulator: Any = None
        self.stack: LocalStack | None = None
        self.lambdas: InProcessLambdas | None = None
        self._session: Any = None
        self._queue_url = ""
        self._received: list[ReceivedNotification] = []

    # --- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> LocalPipeline:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        import boto3  # noqa: PLC0415 - after the environment is prepared
        from moto import mock_aws  # noqa: PLC0415 - local run only

        saved_environment = dict(os.environ)
        self._exit.callback(_restore_environment, saved_environment)
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        os.environ["AWS_DEFAULT_REGION"] = REGION
        self._exit.enter_context(
            mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        )
        self._session = boto3.Session(region_name=REGION)
        parameters = dict(self._parameters)
        environment = dict(self._environment)
        if self._external_fal:
            parameters["FalBaseUrl"] = self._external_fal
            # The real model cannot reach a bucket that lives in this process: send the bytes.
            parameters["InputTransfer"] = "data_uri"
            api_key = self._fal_key
        else:
            api_key = self._fal_key or f"local-{secrets.token_hex(8)}"
            self.emulator = self._start_emulator(api_key)
            parameters["FalBaseUrl"] = self.emulator.base_url
            host = self.emulator.base_url.split("//", 1)[1].split(":", 1)[0]
            parameters["OutputUrlHosts"] = host
            environment["ALLOW_HTTP_OUTPUT_URLS"] = "true"
        deployment_id = uuid.uuid4().hex[:8]
        gateway = FunctionUrlGateway(self.client("lambda")).start()
        self._exit.callback(gateway.stop)
        if self.emulator is not None:
            parameters["WebhookJwksUrl"] = self.emulator.jwks_url
        self.stack = deploy_stack(
            self.template_path,
            session=self._session,
            stack_name=f"kontext-local-{deployment_id}",
            parameters=parameters,
            environment_overrides=environment,
            function_url_for=gateway.url_for,
        )
        if api_key:
            self.client("secretsmanager").put_secret_value(
                SecretId=self.stack.outputs["FalApiKeySecretArn"], SecretString=api_key
            )
        self.lambdas = InProcessLambdas(
            self.stack.functions,
            deployment_id,
            async_configs=self.stack.async_configs,
            sqs=self.client("sqs"),
        )
        self._exit.enter_context(self.lambdas.patched())
        self._subscribe_queue()

    def _start_emulator(self, api_key: str) -> Any:
        from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator  # noqa: PLC0415

        emulator = FalQueueEmulator(
            timing=self._emulator_timing or EmulatorTiming(queue_seconds=0.3, run_seconds=1.0),
            api_key=api_key,
            fetch_input=_fetch_through_moto,
        )
        emulator.start()
        self._exit.callback(emulator.stop)
        return emulator

    def _subscribe_queue(self) -> None:
        sqs = self.client("sqs")
        self._queue_url = sqs.create_queue(QueueName="kontext-local-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.client("sns").subscribe(
            TopicArn=self.outputs["NotificationsTopicArn"], Protocol="sqs", Endpoint=queue_arn
        )

    # --- using it ---------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return self._session.client(service, region_name=REGION)

    @property
    def outputs(self) -> dict[str, str]:
        assert self.stack is not None, "use LocalPipeline as a context manager"
        return self.stack.outputs

    @property
    def bucket(self) -> str:
        return self.outputs["ImagesBucketName"]

    def upload(
        self,
        image: Path | bytes,
        *,
        prompt: str | None = None,
        options: Mapping[str, Any] | None = None,
        key: str | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> SourceObject:
        """Put an image under the inputs prefix with its prompt and options as user metadata."""
        body = image.read_bytes() if isinstance(image, Path) else image
        if key is None:
            name = image.name if isinstance(image, Path) else f"upload-{uuid.uuid4().hex[:8]}.png"
            key = self.outputs["InputPrefix"] + name
        return upload_image(
            self.client("s3"),
            self.bucket,
            key,
            body,
            prompt=prompt,
            options=options,
            metadata=metadata,
            content_type=content_type,
        )

    def wait_for_notification(
        self,
        source: SourceObject,
        *,
        timeout: float = 120.0,
        on_progress: Callable[[JobProgress, float], None] | None = None,
    ) -> ReceivedNotification:
        """Block until the job for this object version has published its notification."""
        started = time.monotonic()
        execution: dict[str, Any] | None = None
        while time.monotonic() - started < timeout:
            found = self._take_notification(source)
            if found is not None:
                return found
            if on_progress is not None:
                # Found once: the job's execution does not change, only its progress.
                execution = execution or self.execution_for(source)
                if execution is not None:
                    progress = job_progress(self.client("stepfunctions"), execution)
                    on_progress(progress, time.monotonic() - started)
            time.sleep(0.1)
        raise TimeoutError(f"no notification for {source.s3_uri} within {timeout:.0f} s")

    def notifications(self) -> list[ReceivedNotification]:
        """Every notification received so far (drains the queue into memory)."""
        self._drain_queue()
        return list(self._received)

    def _take_notification(self, source: SourceObject) -> ReceivedNotification | None:
        self._drain_queue()
        for item in self._received:
            got = item.notification.source
            if got.key == source.key and (
                source.version_id is None or got.version_id in (None, source.version_id)
            ):
                return item
        return None

    def _drain_queue(self) -> None:
        sqs = self.client("sqs")
        while True:
            messages = sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                envelope = json.loads(message["Body"])
                self._received.append(
                    ReceivedNotification(
                        envelope, Notification.model_validate_json(envelope["Message"])
                    )
                )
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        return list(
            sfn.list_executions(stateMachineArn=self.outputs["StateMachineArn"])["executions"]
        )

    def execution_for(self, source: SourceObject) -> dict[str, Any] | None:
        return find_execution(self.client("stepfunctions"), self.outputs["StateMachineArn"], source)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        return list(
            sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        )

    def download_outputs(self, notification: Notification, out_dir: Path) -> list[Path]:
        """Copy the job's output images and manifest from the emulated S3 into a folder."""
        if not notification.manifest_uri:
            return []
        return download_results(self.client("s3"), notification.manifest_uri, out_dir)


def _fetch_through_moto(url: str) -> bytes:
    """The emulator's way to read a presigned URL of the in-process S3.

    moto answers HTTP made with `requests` (it patches it); httpx would try the internet.
    """
    if url.startswith("data:"):
        return base64.b64decode(url.split(",", 1)[1])
    import requests  # noqa: PLC0415 - local run only, installed with moto

    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.content


def _restore_environment(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)
