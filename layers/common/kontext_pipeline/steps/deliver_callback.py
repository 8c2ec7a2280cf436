"""DeliverCallback: a job's outcome event -> the job's recorded notification, POSTed signed
to its upload's callback-url once that URL passes the rules; or the refusal put on the bus
and nobody called."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kontext_pipeline.core.config import (
    CallbackSettings,
    EventBusSettings,
    HttpSettings,
    JobsTableSettings,
    ModelSettings,
)
from kontext_pipeline.core.errors import CallbackRefusedError
from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.core.notification import EVENT_SOURCE
from kontext_pipeline.core.observability import logger
from kontext_pipeline.jobs.published import recorded_outcome
from kontext_pipeline.notifications.callbacks.delivery import post_signed_notification
from kontext_pipeline.notifications.callbacks.urls import (
    CallbackRules,
    Resolver,
    check_callback_url,
    read_callback_url,
    system_resolver,
)

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_s3.client import S3Client

REFUSED_DETAIL_TYPE = "Kontext Callback Refused"


@dataclass(frozen=True)
class CallbackReport:
    outcome: str  # none | refused | delivered | rejected
    detail: str


class DeliverCallbackSettings(
    ModelSettings,
    HttpSettings,
    JobsTableSettings,
    EventBusSettings,
    CallbackSettings,
):
    """What functions/deliver_callback reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class DeliverCallbackDeps:
    s3: S3Client
    http: httpx.Client
    events: EventBridgeClient
    event_bus_name: str
    # The jobs table, where each job's published notification is recorded.
    dynamodb: DynamoDBClient
    jobs_table: str
    rules: CallbackRules
    signing_key_source: Callable[[], bytes]
    resolve: Resolver = system_resolver


def run(event_detail: Mapping[str, Any], deps: DeliverCallbackDeps) -> CallbackReport:
    """POST a finished job's notification to its upload's callback-url, if it has one.

    The event only says which job ended. The body is the notification recorded when the job
    published it (jobs/published.py), and an event that does not match that record field
    for field, or names a job with none, calls nobody. A refused event or URL is never
    requested: the refusal is logged and put on the bus as a `Kontext Callback Refused`
    event with a `callback` note (`reason: callback_refused` and why).
    """
    try:
        notification = _recorded_for(event_detail, deps)
    except CallbackRefusedError as exc:
        claimed = {name: event_detail.get(name) for name in ("source", "status", "request_id")}
        return _refuse(claimed, exc, url=None, deps=deps)
    source = SourceObject.model_validate(notification["source"])
    url = read_callback_url(deps.s3, source)
    if url is None:
        return CallbackReport("none", "the upload has no callback-url")
    try:
        target = check_callback_url(url, deps.rules, resolve=deps.resolve)
    except CallbackRefusedError as exc:
        return _refuse(notification, exc, url=url, deps=deps)
    outcome = post_signed_notification(
        deps.http, target, notification, key=deps.signing_key_source()
    )
    if outcome.outcome == "rejected":
        logger.warning(
            "callback rejected by the receiver",
            extra={"status": outcome.status_code, "webhook_id": outcome.webhook_id},
        )
    return CallbackReport(outcome.outcome, f"HTTP {outcome.status_code}")


def _recorded_for(event_detail: Mapping[str, Any], deps: DeliverCallbackDeps) -> dict[str, Any]:
    """The job's recorded notification, if the event is exactly it."""
    try:
        source = SourceObject.model_validate(event_detail.get("source") or {})
    except ValidationError as exc:
        raise CallbackRefusedError("the event names no upload") from exc
    recorded = recorded_outcome(deps.dynamodb, deps.jobs_table, source)
    if recorded is None:
        raise CallbackRefusedError(f"no job of {source.s3_uri} has ended")
    if recorded != dict(event_detail):
        raise CallbackRefusedError(f"the event does not match how the job of {source.s3_uri} ended")
    return recorded


def _refuse(
    detail: Mapping[str, Any],
    refused: CallbackRefusedError,
    *,
    url: str | None,
    deps: DeliverCallbackDeps,
) -> CallbackReport:
    source = detail.get("source") or {}
    logger.warning(
        "callback refused",
        extra={
            "reason": refused.reason,
            "why": refused.message,
            "object_key": source.get("key") if isinstance(source, Mapping) else None,
        },
    )
    note = {"status": "refused", "reason": refused.reason, "message": refused.message}
    if url is not None:
        # Only scheme and host: the path and query may carry the receiver's tokens.
        note["url"] = _redacted(url)
    _put_refusal({**detail, "callback": note}, deps)
    return CallbackReport("refused", refused.message)


def _put_refusal(detail: Mapping[str, Any], deps: DeliverCallbackDeps) -> None:
    try:
        deps.events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": REFUSED_DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                    "EventBusName": deps.event_bus_name,
                }
            ]
        )
    except (ClientError, BotoCoreError) as exc:
        # The refusal is already logged; a lost note must not make Lambda retry the job.
        logger.warning("callback refusal not put on the bus", extra={"why": str(exc)})


def _redacted(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}/..."
    except ValueError:
        return "(not a URL)"
