"""What a job ends with: its outputs as they stand in S3, the manifest written beside them,
and the one notification every job publishes, success or failure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from kontext_pipeline.core.models import EditOptions, SourceObject, utc_now

# The EventBridge source of every event the pipeline puts (outcomes, refused callbacks).
EVENT_SOURCE = "kontext-pipeline"


class StoredOutput(BaseModel):
    """One output image as it now stands in S3."""

    s3_uri: str
    bucket: str
    key: str
    # What landed: the type its bytes turned out to be, and their size and digest.
    size: int
    content_type: str
    width: int | None = None
    height: int | None = None
    sha256: str


class Manifest(BaseModel):
    """Written beside the outputs, last: its presence means the outputs are complete."""

    source: SourceObject
    request_id: str
    prompt: str
    options: EditOptions
    seed: int | None
    has_nsfw_concepts: list[bool]
    timings: dict[str, Any]
    outputs: list[StoredOutput]
    created_at: datetime = Field(default_factory=utc_now)


class FailureDetail(BaseModel):
    reason: str
    error: str
    message: str


class Notification(BaseModel):
    """The one SNS message each job ends with, success or failure."""

    version: Literal["1"] = "1"
    status: Literal["SUCCEEDED", "FAILED"]
    source: SourceObject
    request_id: str | None = None
    prompt: str | None = None
    outputs: list[StoredOutput] = Field(default_factory=list)
    manifest_uri: str | None = None
    seed: int | None = None
    has_nsfw_concepts: list[bool] = Field(default_factory=list)
    timings: dict[str, Any] = Field(default_factory=dict)
    failure: FailureDetail | None = None
    execution: str | None = None
    created_at: datetime = Field(default_factory=utc_now)

    def subject(self) -> str:
        # SNS subjects are ASCII, under 100 characters, no line breaks.
        key = quote(self.source.key, safe="/")
        text = f"kontext-pipeline {self.status}: {key}"
        return text if len(text) <= 99 else text[:96] + "..."
