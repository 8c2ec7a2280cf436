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
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from kontext_pipeline.errors import ConfigurationError, InvalidInputError
from kontext_pipeline.metadata import encode_metadata_value, validate_options
from kontext_pipeline.models import SourceObject

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
}


class DeployedStackError(ConfigurationError):
    """The stack cannot be used: not found, no credentials, no access."""

    default_reason = "stack_unavailable"


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
            reason="no_credentials",
        ) from exc
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise DeployedStackError(
                f"stack {stack_name!r} not found in this account and region; deploy it with "
                "make deploy, or pass --stack / --region",
                reason="stack_not_found",
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
    """Put an image with its prompt and options as user metadata (validated first)."""
    if options:
        validate_options(options)
    user_metadata = {
        name.replace("_", "-"): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in (options or {}).items()
    }
    if prompt is not None:
        user_metadata["prompt"] = prompt
    user_metadata.update(metadata or {})
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type
        or CONTENT_TYPES.get(Path(key).suffix.lower(), "application/octet-stream"),
        Metadata={name: encode_metadata_value(value) for name, value in user_metadata.items()},
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
                f"key must start with {stack.input_prefix!r}", reason="invalid_key"
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
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered["name"]
            history.append((str(event["timestamp"]), state))
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
    )


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
        raise InvalidInputError("the API key is empty", reason="missing_key")
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
