"""The whole pipeline on this machine: AWS emulated by a moto server and the model-queue
emulator, both on 127.0.0.1.

    with LocalPipeline() as pipeline:
        source = pipeline.upload(Path("photo.jpg"), prompt="make it snow")
        message = pipeline.wait_for_notification(source)

What runs is what ships: `sam build` output for this machine (build.py), deployed from
its built template with the ASL file as it is (stack/). Each function runs in processes
of its own from its built folder and the built layer, and reaches the emulated AWS over
HTTP as it would reach AWS (lambdas.py); the state machine runs on moto's ASL
interpreter; an SQS queue subscribed to the topic receives the notifications, as a
downstream consumer would. Standing it up is stand_up.py; this module is using it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.core.notification import Notification

from kontext_tools.backfill import (
    BackfillResult,
    BackfillRuns,
    backfill_input,
    wait_for_backfill,
)
from kontext_tools.deployed import (
    JobProgress,
    UploadContent,
    content_type_for,
    download_results,
    execution_events,
    find_execution,
    job_progress,
    upload_image,
)
from kontext_tools.local.stand_up import LocalRun, LocalRunOptions, stand_up

if TYPE_CHECKING:
    from kontext_tools.emulator import FalQueueEmulator
    from kontext_tools.local.lambdas import LocalLambdas
    from kontext_tools.local.stack import LocalStack
    from kontext_tools.session_clients import SessionClients


# How long a local run waits, once its jobs are done, for what they started to finish.
SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class ReceivedNotification:
    """An SNS notification as the subscribed SQS queue received it."""

    envelope: dict[str, Any]
    notification: Notification

    @property
    def published_at(self) -> float:
        """When the topic took the notification (SNS's `Timestamp`, seconds since the
        epoch): the job's end as a subscriber's clock sees it, before any delivery or
        polling of ours."""
        stamp = str(self.envelope["Timestamp"]).replace("Z", "+00:00")
        return datetime.fromisoformat(stamp).timestamp()


class LocalPipeline:
    """Stand the application up locally; use as a context manager."""

    def __init__(self, **options: Unpack[LocalRunOptions]) -> None:
        """`options`: how to stand it up (LocalRunOptions; each has a default)."""
        unknown = set(options) - LocalRunOptions.__optional_keys__
        if unknown:
            raise TypeError(f"LocalPipeline() got unexpected keyword arguments {sorted(unknown)}")
        self._options = options
        self._exit = ExitStack()
        self._run: LocalRun | None = None
        self._queue_url = ""
        self._received: list[ReceivedNotification] = []

    # --- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> LocalPipeline:
        try:
            self._run = stand_up(self._options, self._exit)
            self._subscribe_queue()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit.close()

    def _subscribe_queue(self) -> None:
        sqs = self.clients.sqs
        name = f"{self.stack.name if self.stack else 'kontext-local'}-notifications"
        self._queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.clients.sns.subscribe(
            TopicArn=self.outputs["NotificationsTopicArn"], Protocol="sqs", Endpoint=queue_arn
        )

    # --- what stands ------------------------------------------------------------------

    @property
    def stack(self) -> LocalStack | None:
        return self._run.stack if self._run else None

    @property
    def lambdas(self) -> LocalLambdas | None:
        return self._run.lambdas if self._run else None

    @property
    def emulator(self) -> FalQueueEmulator | None:
        """The model-queue emulator (None when the run uses a real model queue)."""
        return self._run.emulator if self._run else None

    @property
    def endpoint_url(self) -> str:
        """The emulated AWS's endpoint ("" until the run stands)."""
        return self._run.endpoint_url if self._run else ""

    @property
    def clients(self) -> SessionClients:
        """Typed boto3 clients of the emulated AWS (`pipeline.clients.s3`)."""
        assert self._run is not None, "use LocalPipeline as a context manager"
        return self._run.clients

    @property
    def outputs(self) -> dict[str, str]:
        assert self.stack is not None, "use LocalPipeline as a context manager"
        return self.stack.outputs

    @property
    def bucket(self) -> str:
        return self.outputs["ImagesBucketName"]

    # --- using it ---------------------------------------------------------------------

    def upload(
        self, image: Path | bytes, *, key: str | None = None, **content: Unpack[UploadContent]
    ) -> SourceObject:
        """Put an image under the inputs prefix with its prompt and options as user metadata."""
        body = image.read_bytes() if isinstance(image, Path) else image
        if key is None:
            name = image.name if isinstance(image, Path) else f"upload-{uuid.uuid4().hex[:8]}.png"
            key = self.outputs["InputPrefix"] + name
        return upload_image(self.clients.s3, self.bucket, key, body, **content)

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
                    progress = job_progress(self.clients.stepfunctions, execution)
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
        sqs = self.clients.sqs
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

    def settle(self, timeout: float = SETTLE_SECONDS) -> list[str]:
        """Let executions end (their notification comes first), then the asynchronous
        invocations they started (callbacks, with Lambda's retries and their own backoff);
        returns what still runs after `timeout` s, which stopping the run cuts short."""
        deadline = time.monotonic() + timeout
        running = self._running_executions()
        while running and time.monotonic() < deadline:
            time.sleep(0.2)
            running = self._running_executions()
        cut_short = [f"execution {name} (still RUNNING)" for name in running]
        if self.lambdas is not None:
            left = max(0.0, deadline - time.monotonic())
            cut_short += [f"{name} (asynchronous invocation)" for name in self.lambdas.drain(left)]
        return cut_short

    def _running_executions(self) -> list[str]:
        return [str(e["name"]) for e in self.executions() if e["status"] == "RUNNING"]

    def executions(self) -> list[dict[str, Any]]:
        """Every execution of the edit state machine, newest first (all pages)."""
        pages = self.clients.stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=self.outputs["StateMachineArn"]
        )
        return [dict(execution) for page in pages for execution in page["executions"]]

    def execution_for(self, source: SourceObject) -> dict[str, Any] | None:
        return find_execution(self.clients.stepfunctions, self.outputs["StateMachineArn"], source)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return [
            dict(event) for event in execution_events(self.clients.stepfunctions, execution_arn)
        ]

    def put_existing(
        self, files: Mapping[str, bytes], *, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Objects as if they were in the bucket before the pipeline: no S3 event is sent
        for them (the bucket's notifications are off while they are written)."""
        s3 = self.clients.s3
        saved = s3.get_bucket_notification_configuration(Bucket=self.bucket)
        saved.pop("ResponseMetadata", None)  # type: ignore[misc]
        s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={})
        try:
            for key, body in files.items():
                s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type_for(key),
                    Metadata=dict(metadata or {}),
                )
        finally:
            s3.put_bucket_notification_configuration(
                Bucket=self.bucket,
                NotificationConfiguration=saved,  # type: ignore[arg-type]
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
        clients, outputs = self.clients, self.outputs
        runs = BackfillRuns(
            clients.stepfunctions,
            clients.dynamodb,
            outputs["BackfillStateMachineArn"],
            outputs["JobsTableName"],
        )
        document = backfill_input(
            prefix, prompt=prompt, options=options, max_concurrency=max_concurrency
        )
        return wait_for_backfill(runs, runs.start(document), timeout=timeout)

    def download_outputs(self, notification: Notification, out_dir: Path) -> list[Path]:
        """Copy the job's output images and manifest from the emulated S3 into a folder."""
        if not notification.manifest_uri:
            return []
        return download_results(self.clients.s3, notification.manifest_uri, out_dir)
