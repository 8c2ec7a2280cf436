"""Working with a deployed stack: find it, upload an edit, follow a job, fetch its results.

Used by the `kontext-pipeline` command against AWS and by the local run against moto;
every function takes its boto3 clients as arguments.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from kontext_pipeline.errors import CaughtError, ConfigurationError, InvalidInputError
from kontext_pipeline.metadata import encode_metadata_value, validate_options
from kontext_pipeline.models import SourceObject

from kontext_tools.errors import ToolReason

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
}


# S3 refuses user metadata over 2 KB, counted as the UTF-8 bytes of every name and value.
MAX_METADATA_BYTES = 2048
PROMPT_SIDECAR_SUFFIX = ".prompt.txt"


def metadata_size(metadata: Mapping[str, str]) -> int:
    return sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items())


def sidecar_key_for(key: str) -> str:
    return key + PROMPT_SIDECAR_SUFFIX


def user_metadata_for(
    prompt: str | None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The x-amz-meta-* an upload carries, encoded as S3 stores them."""
    user_metadata = {
        name.replace("_", "-"): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in (options or {}).items()
    }
    if prompt is not None:
        user_metadata["prompt"] = prompt
    user_metadata.update(metadata or {})
    return {name: encode_metadata_value(value) for name, value in user_metadata.items()}


def prompt_goes_to_sidecar(prompt: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether upload_image puts this prompt into the sidecar (it does not fit in metadata)."""
    return metadata_size(user_metadata_for(prompt, options)) > MAX_METADATA_BYTES


FAILURE_STATE = "ReportFailure"


class DeployedStackError(ConfigurationError):
    """The stack cannot be used: not found, no credentials, no access."""

    default_reason: ClassVar[StrEnum] = ToolReason.STACK_UNAVAILABLE


@dataclass(frozen=True)
class StackOutputs:
    name: str
    outputs: dict[str, str]

    @property
    def bucket(self) -> str:
        return self.outputs["ImagesBucketName"]

    @property
    def input_prefix(self) -> str:
        return self.outputs.get("InputPrefix", "inputs/")

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]


@dataclass(frozen=True)
class JobProgress:
    execution_arn: str
    execution_status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    state: str
    model_status: str | None
    queue_position: int | None
    history: list[tuple[str, str]]  # (timestamp, state entered)
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    # What the failure branch was handed: its message (the reason's explanation), the prompt.
    failure_message: str | None = None
    prompt: str | None = None


def stack_name_from_samconfig(path: Path = Path("samconfig.toml")) -> str | None:
    if not path.is_file():
        return None
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    for section in ("deploy", "global"):
        name = config.get("default", {}).get(section, {}).get("parameters", {}).get("stack_name")
        if name:
            return str(name)
    return None


def find_stack(cloudformation: Any, stack_name: str) -> StackOutputs:
    """The stack's outputs, or a message that says what to fix."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (NoCredentialsError, NoRegionError) as exc:
        raise DeployedStackError(
            f"{exc}: configure AWS credentials and a region (aws configure, or AWS_PROFILE / "
            "AWS_REGION)",
            reason=ToolReason.NO_CREDENTIALS,
        ) from exc
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise DeployedStackError(
                f"stack {stack_name!r} not found in this account and region; deploy it with "
                "make deploy, or pass --stack / --region",
                reason=ToolReason.STACK_NOT_FOUND,
            ) from exc
        raise DeployedStackError(f"cannot read stack {stack_name!r}: {message}") from exc
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    if "ImagesBucketName" not in outputs or "StateMachineArn" not in outputs:
        raise DeployedStackError(f"stack {stack_name!r} is not a kontext-pipeline stack")
    return StackOutputs(stack_name, outputs)


def upload_image(
    s3: Any,
    bucket: str,
    key: str,
    body: bytes,
    *,
    prompt: str | None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> SourceObject:
    """Put an image with its prompt and options as user metadata (validated first).

    A prompt that would take the metadata past S3's 2 KB goes into the `<key>.prompt.txt`
    sidecar instead, written before the image: the image's upload starts the job, and the
    job reads the sidecar when the metadata has no prompt.
    """
    if options:
        validate_options(options)
    encoded = user_metadata_for(prompt, options, metadata)
    if prompt is not None and metadata_size(encoded) > MAX_METADATA_BYTES:
        del encoded["prompt"]
        s3.put_object(
            Bucket=bucket,
            Key=sidecar_key_for(key),
            Body=prompt.encode("utf-8"),
            ContentType="text/plain; charset=utf-8",
        )
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type
        or CONTENT_TYPES.get(Path(key).suffix.lower(), "application/octet-stream"),
        Metadata=encoded,
    )
    return SourceObject(
        bucket=bucket,
        key=key,
        version_id=response.get("VersionId"),
        size=len(body),
        etag=response.get("ETag"),
    )


def input_key_for(stack: StackOutputs, image: Path, key: str | None) -> str:
    if key:
        if not key.startswith(stack.input_prefix):
            raise InvalidInputError(
                f"key must start with {stack.input_prefix!r}", reason=ToolReason.INVALID_KEY
            )
        return key
    return f"{stack.input_prefix}{uuid.uuid4().hex[:8]}-{image.name}"


def find_execution(
    stepfunctions: Any, state_machine_arn: str, source: SourceObject
) -> dict[str, Any] | None:
    """The newest execution for this object (this version, when the version is known)."""
    paginator = stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn):
        for summary in page["executions"]:  # newest first
            described = stepfunctions.describe_execution(executionArn=summary["executionArn"])
            started = json.loads(described.get("input", "{}")).get("source", {})
            if started.get("key") != source.key:
                continue
            # S3 events carry the version id; moto's carry only the ETag.
            if source.version_id and started.get("version_id") not in (None, source.version_id):
                continue
            if source.etag and started.get("etag") not in (None, source.etag.strip('"')):
                continue
            return dict(described)
    return None


def job_progress(stepfunctions: Any, execution: Mapping[str, Any]) -> JobProgress:
    """Where a job stands, from its execution and history."""
    arn = execution["executionArn"]
    described = stepfunctions.describe_execution(executionArn=arn)
    events = stepfunctions.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    state, model_status, position, history = described["status"], None, None, []
    failure_message = prompt = None
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered["name"]
            history.append((str(event["timestamp"]), state))
            if state == FAILURE_STATE:
                failure_message, prompt = _failure_of(entered.get("input"))
        output = (event.get("taskSucceededEventDetails") or {}).get("output")
        if output:
            payload = json.loads(output).get("Payload")
            if isinstance(payload, dict) and "status" in payload and "request_id" in payload:
                model_status, position = payload.get("status"), payload.get("queue_position")
    output_text = described.get("output")
    return JobProgress(
        execution_arn=arn,
        execution_status=described["status"],
        state=state,
        model_status=model_status,
        queue_position=position,
        history=history,
        output=json.loads(output_text) if output_text else None,
        error=described.get("error"),
        cause=described.get("cause"),
        failure_message=failure_message,
        prompt=prompt,
    )


def _failure_of(state_input: str | None) -> tuple[str | None, str | None]:
    """The failure's message and the job's prompt from the failure branch's input."""
    try:
        state = json.loads(state_input or "{}")
    except json.JSONDecodeError:
        return None, None
    if not isinstance(state, dict):
        return None, None
    caught = state.get("error")
    message = CaughtError.from_state(caught).message if isinstance(caught, dict) else None
    prompt = state.get("prompt")
    return message, prompt if isinstance(prompt, str) else None


def download_results(s3: Any, manifest_uri: str, out_dir: Path) -> list[Path]:
    """The job's output images and its manifest, into a folder."""
    bucket, manifest_key = manifest_uri.removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    keys = [output["key"] for output in manifest["outputs"]] + [manifest_key]
    for key in keys:
        target = out_dir / key.rsplit("/", 1)[-1]
        target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        written.append(target)
    return written


def put_api_key(secretsmanager: Any, stack: StackOutputs, api_key: str) -> None:
    if not api_key.strip():
        raise InvalidInputError("the API key is empty", reason=ToolReason.MISSING_KEY)
    secretsmanager.put_secret_value(
        SecretId=stack.outputs["FalApiKeySecretArn"], SecretString=api_key.strip()
    )


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every version and delete marker (the bucket is versioned). Returns the count."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        items = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(items), 1000):
            batch = items[start : start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted


@dataclass(frozen=True)
class Teardown:
    """What `teardown_stack` removed."""

    stack_name: str
    status_before: str
    bucket: str | None  # None: the stack never created its bucket
    kept_bucket: bool
    removed_versions: int

    def summary(self) -> str:
        done = f"stack {self.stack_name} deleted (it was {self.status_before})"
        if self.bucket is None:
            return f"{done}; it had no images bucket"
        if self.kept_bucket:
            return f"{done}; kept s3://{self.bucket}"
        return f"{done}; removed {self.removed_versions} object versions and s3://{self.bucket}"


def teardown_stack(cloudformation: Any, s3: Any, stack_name: str, *, keep_bucket: bool) -> Teardown:
    """Delete the stack, then empty and delete its images bucket unless `keep_bucket`.

    Works for a stack whose first deploy failed (ROLLBACK_COMPLETE), the one state in which
    CloudFormation allows nothing but deletion: such a stack has no outputs, so the bucket
    name is rebuilt from the stack id the way the template builds it, and the bucket may or
    may not have survived the rollback (it is DeletionPolicy: Retain).
    """
    from botocore.exceptions import WaiterError  # noqa: PLC0415 - teardown only

    stack = _describe_for_teardown(cloudformation, stack_name)
    status = str(stack["StackStatus"])
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    if "ImagesBucketName" not in outputs and not str(stack.get("Description", "")).startswith(
        "kontext-pipeline"
    ):
        raise DeployedStackError(
            f"stack {stack_name!r} is not a kontext-pipeline stack; not deleting it"
        )
    # Still changing: deleting now would fail or race. A change set that was never
    # executed (REVIEW_IN_PROGRESS) is not changing anything.
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployedStackError(
            f"stack {stack_name!r} is {status}; run teardown again once it has finished",
            reason=ToolReason.STACK_BUSY,
        )
    stack_id = str(stack["StackId"])
    bucket = outputs.get("ImagesBucketName") or f"kontext-images-{stack_id.split('/')[2]}"
    cloudformation.delete_stack(StackName=stack_id)
    try:
        # By id: the name may already belong to a new stack by the time this polls.
        cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack_id)
    except WaiterError as exc:
        raise DeployedStackError(
            f"stack {stack_name!r} did not delete ({exc}); see its events in the console",
            reason=ToolReason.TEARDOWN_FAILED,
        ) from exc
    if not _bucket_exists(s3, bucket):
        return Teardown(stack_name, status, None, keep_bucket, 0)
    if keep_bucket:
        return Teardown(stack_name, status, bucket, True, 0)
    removed = empty_bucket(s3, bucket)
    s3.delete_bucket(Bucket=bucket)
    return Teardown(stack_name, status, bucket, False, removed)


def _describe_for_teardown(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (NoCredentialsError, NoRegionError) as exc:
        raise DeployedStackError(
            f"{exc}: configure AWS credentials and a region", reason=ToolReason.NO_CREDENTIALS
        ) from exc
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        reason = ToolReason.STACK_NOT_FOUND if "does not exist" in message else None
        raise DeployedStackError(
            f"cannot read stack {stack_name!r}: {message}", reason=reason
        ) from exc
    return dict(stacks[0])


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


# --- recent jobs ------------------------------------------------------------------------

# Rough per-job cost: the model's price per output image (FLUX.1 Kontext [max] on fal) and
# Step Functions Standard's price per state transition; Lambda, S3 and SNS add fractions
# of a cent per thousand jobs (see benchmarks/prices.py and the README's Performance).
MODEL_PRICE_PER_IMAGE_USD = 0.08
STEP_FUNCTIONS_PER_TRANSITION_USD = 0.025 / 1000
EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass(frozen=True)
class JobSummary:
    key: str
    status: str
    reason: str | None
    request_id: str | None
    started_at: datetime
    seconds: float | None
    transitions: int
    images: int
    execution_arn: str

    @property
    def cost_usd(self) -> float:
        return (
            self.images * MODEL_PRICE_PER_IMAGE_USD
            + self.transitions * STEP_FUNCTIONS_PER_TRANSITION_USD
        )

    def document(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "reason": self.reason,
            "request_id": self.request_id,
            "started_at": self.started_at.isoformat(),
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "transitions": self.transitions,
            "images": self.images,
            "cost_usd": round(self.cost_usd, 4),
            "execution": self.execution_arn,
        }


def list_jobs(
    stepfunctions: Any,
    state_machine_arn: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[JobSummary]:
    """The newest jobs first: at most `limit`, started at or after `since`."""
    filters = {"statusFilter": status} if status else {}
    jobs: list[JobSummary] = []
    paginator = stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, **filters):
        for summary in page["executions"]:  # newest first
            started = _aware(summary["startDate"])
            if since is not None and started < since:
                return jobs
            jobs.append(_summarise(stepfunctions, summary, started))
            if len(jobs) >= limit:
                return jobs
    return jobs


def _summarise(stepfunctions: Any, summary: Mapping[str, Any], started: datetime) -> JobSummary:
    arn = summary["executionArn"]
    described = stepfunctions.describe_execution(executionArn=arn)
    source = json.loads(described.get("input") or "{}").get("source", {})
    events = stepfunctions.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    transitions = sum(1 for event in events if "stateEnteredEventDetails" in event)
    request_id = None
    for event in events:
        output = (event.get("taskSucceededEventDetails") or {}).get("output")
        payload = json.loads(output).get("Payload") if output else None
        if isinstance(payload, dict) and payload.get("request_id"):
            request_id = str(payload["request_id"])
    output = json.loads(described.get("output") or "null")
    images = len(output.get("outputs", [])) if isinstance(output, dict) else 0
    stopped = described.get("stopDate")
    return JobSummary(
        key=str(source.get("key", "?")),
        status=str(described["status"]),
        reason=described.get("cause") if described["status"] != "SUCCEEDED" else None,
        request_id=request_id,
        started_at=started,
        seconds=(_aware(stopped) - started).total_seconds() if stopped else None,
        transitions=transitions,
        images=images,
        execution_arn=arn,
    )


def _aware(moment: Any) -> datetime:
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    assert isinstance(when, datetime)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- the trigger's dead-letter queue ----------------------------------------------------


@dataclass(frozen=True)
class RedriveOutcome:
    replayed: int
    unreadable: int
    function: str


def trigger_function_of(s3: Any, bucket: str) -> str:
    """The function the bucket's uploads trigger (from its notification configuration)."""
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    functions = [
        item["LambdaFunctionArn"] for item in configuration.get("LambdaFunctionConfigurations", [])
    ]
    if not functions:
        raise DeployedStackError(
            f"bucket {bucket} triggers no function; is the stack fully deployed?",
            reason=ToolReason.NO_TRIGGER,
        )
    return str(functions[0])


def redrive_dead_letters(
    sqs: Any, lambda_client: Any, queue_url: str, function: str, *, limit: int = 1000
) -> RedriveOutcome:
    """Hand each failed S3 event back to the trigger (asynchronously, as S3 does).

    A message is deleted only once its event was handed over, so an interrupted redrive
    loses nothing; a replayed event whose job already exists is dropped by the trigger
    as a duplicate. Messages that are not Lambda failure records are left in the queue.
    """
    replayed = unreadable = 0
    while replayed + unreadable < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            event = _failed_event(message.get("Body", ""))
            if event is None:
                unreadable += 1
                continue
            lambda_client.invoke(
                FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode()
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            replayed += 1
    return RedriveOutcome(replayed, unreadable, function)


def _failed_event(body: str) -> dict[str, Any] | None:
    """The S3 event inside a Lambda on-failure destination record (or a bare event)."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    event = document.get("requestPayload", document)
    return event if isinstance(event, dict) and "Records" in event else None
