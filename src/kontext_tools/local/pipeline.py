"""The whole pipeline on this machine: AWS emulated by a moto server and the model-queue
emulator, both on 127.0.0.1.

    with LocalPipeline() as pipeline:
        source = pipeline.upload(Path("photo.jpg"), prompt="make it snow")
        message = pipeline.wait_for_notification(source)

What runs is what ships: `sam build` output for this machine (build.py), deployed from
its built template with the ASL file as it is (stack.py). Each function runs in processes
of its own from its built folder and the built layer, and reaches the emulated AWS over
HTTP as it would reach AWS (lambdas.py); the state machine runs on moto's ASL
interpreter; an SQS queue subscribed to the topic receives the notifications, as a
downstream consumer would.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kontext_pipeline.models import SourceObject
from kontext_pipeline.outcomes import Notification

from kontext_tools.backfill import (
    BackfillResult,
    backfill_input,
    start_backfill,
    wait_for_backfill,
)
from kontext_tools.deployed import (
    CONTENT_TYPES,
    JobProgress,
    download_results,
    find_execution,
    job_progress,
    upload_image,
)
from kontext_tools.local.build import BuildArtifacts, ensure_built, host_architecture
from kontext_tools.local.gateway import FunctionUrlGateway
from kontext_tools.local.lambdas import DEFAULT_MAX_SANDBOXES, LocalLambdas, RuntimeSetup
from kontext_tools.local.moto_fixes import send_task_failure_keeps_its_cause
from kontext_tools.local.s3_events import s3_event_versions
from kontext_tools.local.s3_limits import s3_metadata_limit
from kontext_tools.local.stack import REGION, LocalStack, deploy_stack

# Credentials of the emulated account: moto accepts any, real AWS none of these.
EMULATED_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}

# The template's parameters, tuned for a machine-local run: the emulator's model takes
# about a second, so poll every second rather than every 2-30 s.
LOCAL_PARAMETERS = {
    "PollMinSeconds": "1",
    "PollMaxSeconds": "5",
    "ExpectedModelSeconds": "1",
    "DeadlineSeconds": "120",
    "LogLevel": "WARNING",
}
# Local-only environment: there is no CloudWatch here to read metrics.
LOCAL_ENVIRONMENT = {
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
        build: BuildArtifacts | None = None,
        fal_base_url: str | None = None,
        fal_key: str | None = None,
        emulator_timing: Any = None,
        parameters: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        max_sandboxes: int = DEFAULT_MAX_SANDBOXES,
    ) -> None:
        """`build`: the artifacts to run (default: this checkout's, rebuilt when stale).
        `log_file`: where the functions' output and the emulated AWS's logs go (default:
        nowhere). `max_sandboxes`: warm processes per function at most."""
        self._build = build
        self._log_file = log_file
        self._max_sandboxes = max_sandboxes
        self._external_fal = fal_base_url
        self._fal_key = fal_key
        self._emulator_timing = emulator_timing
        self._parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self._environment = {**LOCAL_ENVIRONMENT, **(environment or {})}
        self._exit = ExitStack()
        self.emulator: Any = None
        self.stack: LocalStack | None = None
        self.lambdas: LocalLambdas | None = None
        self.endpoint_url = ""
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

        artifacts = self._build or ensure_built()
        saved_environment = dict(os.environ)
        self._exit.callback(_restore_environment, saved_environment)
        log = self._open_log()
        self.endpoint_url = self._start_aws(log)
        # Every client of this process, and of the functions' processes, reaches the
        # emulated AWS; the state machine's interpreter finds it through MOTO_PORT.
        emulated = {
            **EMULATED_CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }
        os.environ.update(emulated)
        os.environ["MOTO_PORT"] = self.endpoint_url.rsplit(":", 1)[1]
        self._session = boto3.Session(region_name=REGION)
        parameters = {"Architecture": host_architecture(), **self._parameters}
        environment = dict(self._environment)
        if self._external_fal:
            parameters["FalBaseUrl"] = self._external_fal
            # The real model cannot reach a bucket on this machine: send the bytes.
            parameters["InputTransfer"] = "data_uri"
            api_key = self._fal_key
        else:
            api_key = self._fal_key or f"local-{secrets.token_hex(8)}"
            self.emulator = self._start_emulator(api_key)
            parameters["FalBaseUrl"] = self.emulator.base_url
            parameters.setdefault("OutputUrlHosts", urlsplit(self.emulator.base_url).hostname)
            parameters["WebhookJwksUrl"] = self.emulator.jwks_url
            environment["ALLOW_HTTP_OUTPUT_URLS"] = "true"
        gateway = FunctionUrlGateway(self.client("lambda")).start()
        self._exit.callback(gateway.stop)
        self.stack = deploy_stack(
            artifacts.template,
            session=self._session,
            stack_name=f"kontext-local-{uuid.uuid4().hex[:8]}",
            parameters=parameters,
            environment_overrides=environment,
            function_url_for=gateway.url_for,
        )
        if api_key:
            self.client("secretsmanager").put_secret_value(
                SecretId=self.stack.outputs["FalApiKeySecretArn"], SecretString=api_key
            )
        self.lambdas = LocalLambdas(
            self.stack.functions,
            RuntimeSetup(artifacts.python, artifacts.runtime_sdk_dir, emulated, log),
            async_configs=self.stack.async_configs,
            sqs=self.client("sqs"),
            max_sandboxes=self._max_sandboxes,
        )
        self._exit.enter_context(self.lambdas.patched())
        # One cold start per function now: a broken build fails here, naming the import.
        self.lambdas.warm_up()
        self._subscribe_queue()

    def _open_log(self) -> Any:
        if self._log_file is None:
            return None
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        return self._exit.enter_context(self._log_file.open("a", encoding="utf-8"))

    def _start_aws(self, log: Any) -> str:
        """A moto server on 127.0.0.1 running real ASL; returns its endpoint."""
        import httpx  # noqa: PLC0415
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - local run only

        _route_moto_logs(log)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # Its serve loop notices a shutdown only every half second: stop it without waiting
        # (nothing is served after the reset below, and the port is freed a moment later).
        self._exit.callback(
            threading.Thread(target=server.stop, name="moto-server-stop", daemon=True).start
        )
        # Emulated state lives in this process's moto backends, shared by every local run
        # in the process: the last one to stop leaves none to the next.
        with _ACTIVE_RUNS_LOCK:
            _ACTIVE_RUNS[0] += 1
        self._exit.callback(_reset_when_last, endpoint)
        httpx.post(
            f"{endpoint}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
            timeout=10,
        ).raise_for_status()
        self._exit.enter_context(s3_metadata_limit())
        self._exit.enter_context(send_task_failure_keeps_its_cause())
        self._exit.enter_context(s3_event_versions())
        return endpoint

    def _start_emulator(self, api_key: str) -> Any:
        from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator  # noqa: PLC0415

        emulator = FalQueueEmulator(
            timing=self._emulator_timing or EmulatorTiming(queue_seconds=0.3, run_seconds=1.0),
            api_key=api_key,
        )
        emulator.start()
        self._exit.callback(emulator.stop)
        return emulator

    def _subscribe_queue(self) -> None:
        sqs = self.client("sqs")
        name = f"{self.stack.name if self.stack else 'kontext-local'}-notifications"
        self._queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
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

    def put_existing(
        self, files: Mapping[str, bytes], *, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Objects as if they were in the bucket before the pipeline: no S3 event is sent
        for them (the bucket's notifications are off while they are written)."""
        s3 = self.client("s3")
        saved = s3.get_bucket_notification_configuration(Bucket=self.bucket)
        saved.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={})
        try:
            for key, body in files.items():
                s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=CONTENT_TYPES.get(
                        Path(key).suffix.lower(), "application/octet-stream"
                    ),
                    Metadata=dict(metadata or {}),
                )
        finally:
            s3.put_bucket_notification_configuration(
                Bucket=self.bucket, NotificationConfiguration=saved
            )

    def backfill(
        self,
        prefix: str,
        *,
        prompt: str | None = None,
        options: Mapping[str, Any] | None = None,
        max_concurrency: int | None = None,
        timeout: float = 300.0,
    ) -> BackfillResult:
        """Run the stack's backfill over a prefix and wait for its counts."""
        sfn = self.client("stepfunctions")
        execution_arn = start_backfill(
            sfn,
            self.outputs["BackfillStateMachineArn"],
            backfill_input(prefix, prompt=prompt, options=options, max_concurrency=max_concurrency),
        )
        return wait_for_backfill(sfn, execution_arn, timeout=timeout)

    def download_outputs(self, notification: Notification, out_dir: Path) -> list[Path]:
        """Copy the job's output images and manifest from the emulated S3 into a folder."""
        if not notification.manifest_uri:
            return []
        return download_results(self.client("s3"), notification.manifest_uri, out_dir)


_ACTIVE_RUNS = [0]
_ACTIVE_RUNS_LOCK = threading.Lock()


def _reset_when_last(endpoint: str) -> None:
    import httpx  # noqa: PLC0415

    with _ACTIVE_RUNS_LOCK:
        _ACTIVE_RUNS[0] -= 1
        if _ACTIVE_RUNS[0] == 0:
            httpx.post(f"{endpoint}/moto-api/reset", timeout=10)


def _route_moto_logs(log: Any) -> None:
    """moto and its web server log every request: to the run's log file, not the terminal."""
    import logging  # noqa: PLC0415

    for name in ("werkzeug", "moto"):
        logger = logging.getLogger(name)
        logger.handlers = [logging.StreamHandler(log)] if log is not None else []
        logger.propagate = False
        logger.setLevel(logging.INFO if log is not None else logging.CRITICAL)


def _restore_environment(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)
