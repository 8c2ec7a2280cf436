"""An edit made through the intake, and its status read back.

An edit is an object under the input prefix (`<input prefix>api/<edit id>.<ext>`) whose
metadata the trigger reads, and an `edit#<edit id>` item in the jobs table naming the
object and the key that made it. The item is written before the image, so a request that
fails halfway leaves no object without an edit, and the image before the answer, so an
answered edit always has its object (or, for an upload, its presigned form).

The status is read from where the pipeline keeps it: the object's version gives the job,
and the job's recorded notification (jobs/published.py) says how it ended.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import Reason, StorageUnavailableError, aws_error_code
from kontext_pipeline.core.models import EXTENSIONS, SourceObject
from kontext_pipeline.intake.image_fetch import FetchLimits, fetch_image
from kontext_pipeline.intake.key_caps import count_daily_images
from kontext_pipeline.intake.problems import IntakeRefusedError
from kontext_pipeline.intake.requests import EditRequestBody, check_edit_request
from kontext_pipeline.jobs.keys import expires_at, item_key, table_unavailable
from kontext_pipeline.jobs.published import recorded_outcome
from kontext_pipeline.notifications.callbacks.urls import system_resolver
from kontext_pipeline.storage.s3_errors import is_missing_object

if TYPE_CHECKING:
    import httpx
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_s3.client import S3Client

    from kontext_pipeline.intake.api_keys import ApiKey
    from kontext_pipeline.notifications.callbacks.urls import CallbackRules, Resolver

EDIT_PREFIX = "edit#"
PRESIGN_SECONDS = 900  # the upload form and the output links: minutes, not days


@dataclass(frozen=True)
class IntakeDeps:
    s3: S3Client
    dynamodb: DynamoDBClient
    table_name: str
    bucket: str
    input_prefix: str
    http: httpx.Client
    image_rules: CallbackRules
    limits: FetchLimits
    resolve: Resolver = system_resolver


def _storage_unavailable(exc: ClientError | BotoCoreError) -> StorageUnavailableError:
    why = aws_error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return StorageUnavailableError(f"the images bucket is unavailable ({why}): retry")


def create_edit(
    body: dict[str, Any], api_key: ApiKey, deps: IntakeDeps
) -> tuple[int, dict[str, Any]]:
    """(202, the edit) for an image_url, fetched and stored; (201, the edit and its upload
    form) for `"upload": true`."""
    edit_id = "ed_" + secrets.token_hex(12)
    request = check_edit_request(body, edit_id)
    if request.image_url is None:
        key = _object_key(deps, edit_id, request.content_type)
        count_daily_images(deps.dynamodb, deps.table_name, api_key, request.images)
        _record_edit(deps, edit_id, api_key, key)
        document = _edit_document(edit_id, deps.bucket, key, None)
        return 201, document | {"upload": _upload_form(deps, key, request)}
    fetched = fetch_image(
        deps.http,
        request.image_url,
        deps.image_rules,
        deps.limits,
        resolve=deps.resolve,
    )
    key = _object_key(deps, edit_id, fetched.content_type)
    count_daily_images(deps.dynamodb, deps.table_name, api_key, request.images)
    _record_edit(deps, edit_id, api_key, key)
    with fetched.body:
        try:
            stored = deps.s3.put_object(
                Bucket=deps.bucket,
                Key=key,
                Body=fetched.body,
                ContentLength=fetched.size,
                ContentType=fetched.content_type,
                Metadata=request.metadata,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_unavailable(exc) from exc
    return 202, _edit_document(edit_id, deps.bucket, key, stored.get("VersionId"))


def _object_key(deps: IntakeDeps, edit_id: str, content_type: str) -> str:
    extension = EXTENSIONS.get(content_type, content_type.removeprefix("image/"))
    return f"{deps.input_prefix}api/{edit_id}.{extension}"


def _edit_document(edit_id: str, bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    return {
        "id": edit_id,
        "status_url": f"/v1/edits/{edit_id}",
        "object": {"bucket": bucket, "key": key, "version_id": version_id},
    }


def _upload_form(deps: IntakeDeps, key: str, request: EditRequestBody) -> dict[str, Any]:
    """A presigned POST that takes one image of the declared type and size range, with the
    prompt and options bound into its policy: the client cannot change them."""
    fields = {
        "Content-Type": request.content_type,
        **{f"x-amz-meta-{name}": value for name, value in request.metadata.items()},
    }
    conditions: list[Any] = [{name: value} for name, value in fields.items()]
    conditions.append(["content-length-range", 1, deps.limits.max_bytes])
    try:
        form = deps.s3.generate_presigned_post(
            Bucket=deps.bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=PRESIGN_SECONDS,
        )
    except (ClientError, BotoCoreError) as exc:
        raise _storage_unavailable(exc) from exc
    return {
        "method": "POST",
        "url": form["url"],
        "fields": form["fields"],
        "expires_in": PRESIGN_SECONDS,
        "max_bytes": deps.limits.max_bytes,
    }


def _record_edit(deps: IntakeDeps, edit_id: str, api_key: ApiKey, key: str) -> None:
    try:
        deps.dynamodb.put_item(
            TableName=deps.table_name,
            Item={
                **item_key(EDIT_PREFIX + edit_id),
                "bucket": {"S": deps.bucket},
                "key": {"S": key},
                "api_key_id": {"S": api_key.key_id},
                "created_at": {"N": str(int(time.time()))},
                "expires_at": expires_at(),
            },
        )
    except (ClientError, BotoCoreError) as exc:
        raise table_unavailable(exc) from exc


def edit_status(edit_id: str, api_key: ApiKey, deps: IntakeDeps) -> dict[str, Any]:
    """Where the edit stands: awaiting_upload, processing, succeeded or failed; once done,
    the reason, the timings and short-lived links to the outputs and the manifest."""
    item = _edit_item(deps, edit_id)
    # Another key's edit is answered as no edit at all: ids are not for guessing.
    if item is None or item["api_key_id"]["S"] != api_key.key_id:
        raise IntakeRefusedError(f"no edit {edit_id!r} for this key", reason=Reason.EDIT_NOT_FOUND)
    bucket, key = item["bucket"]["S"], item["key"]["S"]
    version_id = _current_version(deps, bucket, key)
    document = _edit_document(edit_id, bucket, key, version_id)
    document["created_at"] = int(item["created_at"]["N"])
    if version_id is None:
        return document | {"status": "awaiting_upload"}
    source = SourceObject(bucket=bucket, key=key, version_id=version_id)
    outcome = recorded_outcome(deps.dynamodb, deps.table_name, source)
    if outcome is None:
        return document | {"status": "processing"}
    return document | _ended(outcome, deps)


def _ended(outcome: dict[str, Any], deps: IntakeDeps) -> dict[str, Any]:
    failure = outcome.get("failure") or {}
    outputs = [_link(deps, output["bucket"], output["key"]) for output in outcome["outputs"]]
    manifest = outcome.get("manifest_uri")
    return {
        "status": str(outcome["status"]).lower(),
        "reason": failure.get("reason"),
        "message": failure.get("message"),
        "timings": outcome.get("timings") or {},
        "outputs": outputs,
        "manifest_url": _link(deps, *manifest.removeprefix("s3://").split("/", 1))
        if manifest
        else None,
        "links_expire_in": PRESIGN_SECONDS,
    }


def _link(deps: IntakeDeps, bucket: str, key: str) -> str:
    params = {"Bucket": bucket, "Key": key}
    url: str = deps.s3.generate_presigned_url(
        "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
    )
    return url


def _edit_item(deps: IntakeDeps, edit_id: str) -> dict[str, Any] | None:
    if not edit_id.startswith("ed_") or not edit_id[3:].isalnum():
        return None
    try:
        answer = deps.dynamodb.get_item(
            TableName=deps.table_name, Key=item_key(EDIT_PREFIX + edit_id), ConsistentRead=True
        )
    except (ClientError, BotoCoreError) as exc:
        raise table_unavailable(exc) from exc
    item: dict[str, Any] | None = answer.get("Item")
    return item


def _current_version(deps: IntakeDeps, bucket: str, key: str) -> str | None:
    """The object's version ("null" in a bucket without versioning), None before upload."""
    try:
        head = deps.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing_object(exc):
            return None
        raise _storage_unavailable(exc) from exc
    except BotoCoreError as exc:
        raise _storage_unavailable(exc) from exc
    return str(head.get("VersionId") or "null")
