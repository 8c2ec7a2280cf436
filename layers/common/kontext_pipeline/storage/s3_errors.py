"""S3's errors as the pipeline errors they mean for a job: a missing object is the upload's
problem, a denied one the deployment's, anything else a passing outage to retry."""

from __future__ import annotations

from botocore.exceptions import ClientError

from kontext_pipeline.core.errors import (
    ConfigurationError,
    InvalidInputError,
    PipelineError,
    Reason,
    StorageUnavailableError,
    aws_error_code,
)

_MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


def is_missing_object(exc: ClientError) -> bool:
    """S3 said the object (or its version) is not there."""
    return aws_error_code(exc) in _MISSING_OBJECT_CODES


def s3_error(exc: ClientError, where: str) -> PipelineError:
    """An S3 ClientError as the pipeline error it means for the job."""
    if is_missing_object(exc):
        return InvalidInputError(
            f"{where} no longer exists (deleted before processing?)", reason=Reason.OBJECT_NOT_FOUND
        )
    if aws_error_code(exc) in ("403", "AccessDenied"):
        return ConfigurationError(
            f"access denied to {where}: check the function's policy", reason=Reason.ACCESS_DENIED
        )
    return StorageUnavailableError(f"S3 call on {where} failed: {aws_error_code(exc)}")
