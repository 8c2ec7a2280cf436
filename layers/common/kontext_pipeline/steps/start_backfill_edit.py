"""Backfill: edit what is already in the bucket, through the trigger's own path.

`BackfillStateMachine` (statemachine/backfill.asl.json) lists a prefix with a Distributed
Map (`ItemReader` `s3:listObjectsV2`) and hands each listed object to this step, which
starts its edit exactly as the trigger does (`JobStarter`, the one naming rule). A listing
has no event sequencer, so the object's current version id is read (HeadObject) and names
the job: an object the trigger already ran, or that an
overlapping backfill started, answers `ExecutionAlreadyExists` and counts as a duplicate,
so it is still submitted once. What the trigger skips (outside the input prefix, the
output prefix, sidecars, folder markers) the backfill skips too.

Each item ends as one word: started, duplicate, skipped or failed, so the Map's result
stays small (about 12 bytes an object, far below Step Functions' 256 KB for tens of
thousands of objects) and the command line counts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from kontext_pipeline.core.config import ModelSettings, ScopeSettings, TriggerSettings
from kontext_pipeline.core.errors import StorageUnavailableError
from kontext_pipeline.core.models import MODEL_PRICE_PER_IMAGE_USD, EditOverrides, SourceObject
from kontext_pipeline.core.observability import logger
from kontext_pipeline.steps.start_edit import JobStarter, StartOutcome
from kontext_pipeline.storage.s3_errors import is_missing_object
from kontext_pipeline.storage.scope import EditScope

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

OUTCOMES = ("started", "duplicate", "skipped", "failed")


class ListedObject(BaseModel):
    """One entry of the Map's S3 listing. Step Functions spells it `Etag`, boto3 `ETag`."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    key: str = Field(alias="Key")
    etag: str | None = Field(None, alias="Etag")
    etag_boto: str | None = Field(None, alias="ETag")
    size: int | None = Field(None, alias="Size")


class BackfillItem(BaseModel):
    """What the Map's ItemSelector hands the function for each listed object."""

    bucket: str
    object: ListedObject
    request: EditOverrides | None = None

    @property
    def source(self) -> SourceObject:
        """The listed object, as the trigger's event would name it (no version yet)."""
        listed = self.object
        return SourceObject(
            bucket=self.bucket,
            key=listed.key,
            etag=(listed.etag or listed.etag_boto or "").strip('"') or None,
            size=listed.size,
        )


class StartBackfillEditSettings(ModelSettings, ScopeSettings, TriggerSettings):
    """What functions/start_backfill_edit reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class StartBackfillEditDeps:
    s3: S3Client
    starter: JobStarter
    scope: EditScope


def run(item: BackfillItem, deps: StartBackfillEditDeps) -> StartOutcome:
    """Start the edit of one listed object, or say why not (skipped, duplicate)."""
    source = item.source
    reason = deps.scope.skip_reason(source)
    if reason:
        return StartOutcome(source, "skipped", reason)
    current = _current_version(deps.s3, source)
    if current is None:
        return StartOutcome(source, "skipped", "deleted since it was listed")
    outcome = deps.starter.start(current, request=item.request)
    logger.info("backfill item", extra={"object_key": current.key, "outcome": outcome.outcome})
    return outcome


def _current_version(s3: S3Client, source: SourceObject) -> SourceObject | None:
    """The listed object as it stands now (version, ETag, size); None once it is deleted.

    The current version is the one to edit; if it was overwritten since the listing, the
    overwrite's own event names the same job, so the two still start it once.
    """
    try:
        head = s3.head_object(Bucket=source.bucket, Key=source.key)
    except ClientError as exc:
        if is_missing_object(exc):
            return None
        raise StorageUnavailableError(f"cannot read {source.s3_uri}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageUnavailableError(f"cannot read {source.s3_uri}: {exc}") from exc
    version = head.get("VersionId")
    return source.model_copy(
        update={
            "version_id": version if version and version != "null" else None,
            "etag": str(head.get("ETag", source.etag or "")).strip('"') or None,
            "size": head.get("ContentLength", source.size),
        }
    )


@dataclass(frozen=True)
class BackfillPlan:
    """What a backfill of a prefix would do, counted without starting anything."""

    objects: int
    skipped: int
    images_per_object: int

    @property
    def images(self) -> int:
        return self.objects * self.images_per_object

    @property
    def model_cost_usd(self) -> float:
        return self.images * MODEL_PRICE_PER_IMAGE_USD


def plan_backfill(
    keys: Iterable[str],
    *,
    bucket: str,
    scope: EditScope,
    request: EditOverrides | None = None,
) -> BackfillPlan:
    """Count what would be started. Images per object come from the request's
    `num_images`, else 1: an object's own metadata may ask for more (up to 4), which only
    reading each object would tell, so the estimate is a floor then."""
    objects = skipped = 0
    for key in keys:
        if scope.skip_reason(SourceObject(bucket=bucket, key=key)):
            skipped += 1
        else:
            objects += 1
    return BackfillPlan(objects, skipped, _images_per_object(request))


def _images_per_object(request: EditOverrides | None) -> int:
    fields: Mapping[str, Any] = request.as_fields() if request else {}
    try:
        return max(1, min(4, int(fields.get("num_images", 1))))
    except (TypeError, ValueError):
        return 1


def tally_key(execution_name: str) -> str:
    """The jobs-table item a backfill run's children count their outcomes on (the ASL's
    CountOutcome state builds the same key from the run's execution name)."""
    return f"backfill#{execution_name}"
