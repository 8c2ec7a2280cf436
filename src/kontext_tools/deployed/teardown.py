"""Tearing a stack down: the stack, then its images bucket (emptied of every version)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from kontext_pipeline.core.errors import aws_error_code

from kontext_tools.deployed.stacks import (
    DeployedStackError,
    ReadAdvice,
    describe_stack,
    stack_outputs_of,
)
from kontext_tools.errors import ToolReason

if TYPE_CHECKING:
    from types_boto3_cloudformation.client import CloudFormationClient
    from types_boto3_cloudformation.type_defs import StackTypeDef
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

TEARDOWN_ADVICE = ReadAdvice(credentials="configure AWS credentials and a region")


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


def empty_bucket(s3: S3Client, bucket: str) -> int:
    """Delete every version and delete marker (the bucket is versioned). Returns the count."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        items: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(items), 1000):
            batch = items[start : start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted


def teardown_stack(
    cloudformation: CloudFormationClient, s3: S3Client, stack_name: str, *, keep_bucket: bool
) -> Teardown:
    """Delete the stack, then empty and delete its images bucket unless `keep_bucket`.

    Works for a stack whose first deploy failed (ROLLBACK_COMPLETE), the one state in which
    CloudFormation allows nothing but deletion: such a stack has no outputs, so the bucket
    name is rebuilt from the stack id the way the template builds it, and the bucket may or
    may not have survived the rollback (it is DeletionPolicy: Retain).
    """
    stack = describe_stack(cloudformation, stack_name, TEARDOWN_ADVICE)
    status = str(stack["StackStatus"])
    bucket = _deletable_stack_bucket(stack, stack_name)
    _delete_stack(cloudformation, str(stack["StackId"]), stack_name)
    if not _bucket_exists(s3, bucket):
        return Teardown(stack_name, status, None, keep_bucket, 0)
    if keep_bucket:
        return Teardown(stack_name, status, bucket, True, 0)
    removed = empty_bucket(s3, bucket)
    s3.delete_bucket(Bucket=bucket)
    return Teardown(stack_name, status, bucket, False, removed)


def _deletable_stack_bucket(stack: StackTypeDef, stack_name: str) -> str:
    """The images bucket of a kontext-pipeline stack that may be deleted now."""
    status = str(stack["StackStatus"])
    outputs = stack_outputs_of(stack)
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
    return outputs.get("ImagesBucketName") or f"kontext-images-{stack_id.split('/')[2]}"


def _delete_stack(cloudformation: CloudFormationClient, stack_id: str, stack_name: str) -> None:
    from botocore.exceptions import WaiterError  # noqa: PLC0415 - teardown only

    cloudformation.delete_stack(StackName=stack_id)
    try:
        # By id: the name may already belong to a new stack by the time this polls.
        cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack_id)
    except WaiterError as exc:
        raise DeployedStackError(
            f"stack {stack_name!r} did not delete ({exc}); see its events in the console",
            reason=ToolReason.TEARDOWN_FAILED,
        ) from exc


def _bucket_exists(s3: S3Client, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if aws_error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True
