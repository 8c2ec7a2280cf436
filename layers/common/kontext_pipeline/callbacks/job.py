"""A finished job's callback: find the job's recorded notification, read the upload's
callback-url, check it against the rules, then deliver the signed notification; or put the
refusal on the bus and call nobody."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kontext_pipeline.callbacks.delivery import deliver_callback
from kontext_pipeline.callbacks.urls import (
    CallbackRules,
    Resolver,
    check_callback_url,
    read_callback_url,
    system_resolver,
)
from kontext_pipeline.errors import CallbackRefusedError
from kontext_pipeline.models import SourceObject
from kontext_pipeline.observability import logger
from kontext_pipeline.outcome_records import recorded_outcome
from kontext_pipeline.outcomes import EVENT_SOURCE

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_s3.client import S3Client

REFUSED_DETAIL_TYPE = "Kontext Callback Refused"


@dataclass(frozen=True)
class CallbackReport:
    outcome: str  # none | refused | delivered | rejected
    detail: str


@dataclass(frozen=True)
class JobCallbacks:
    """Calls back the upload's receiver for a finished job; notes refusals on the bus."""

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

    def deliver_or_note(self, event_detail: Mapping[str, Any]) -> CallbackReport:
        """POST a finished job's notification to its upload's callback-url, if it has one.

        The event only says which job ended. The body is the notification recorded when the
        job published it (outcome_records.py), and an event that does not match that record
        field for field, or names a job with none, calls nobody. A refused event or URL is
        never requested: the refusal is logged and put on the bus as a
        `Kontext Callback Refused` event with a `callback` note (`reason: callback_refused`
        and why).
        """
        try:
            notification = self._recorded_for(event_detail)
        except CallbackRefusedError as exc:
            claimed = {name: event_detail.get(name) for name in ("source", "status", "request_id")}
            return self._refuse(claimed, exc, url=None)
        source = SourceObject.model_validate(notification["source"])
        url = read_callback_url(self.s3, source)
        if url is None:
            return CallbackReport("none", "the upload has no callback-url")
        try:
            target = check_callback_url(url, self.rules, resolve=self.resolve)
        except CallbackRefusedError as exc:
            return self._refuse(notification, exc, url=url)
        outcome = deliver_callback(self.http, target, notification, key=self.signing_key_source())
        if outcome.outcome == "rejected":
            logger.warning(
                "callback rejected by the receiver",
                extra={"status": outcome.status_code, "webhook_id": outcome.webhook_id},
            )
        return CallbackReport(outcome.outcome, f"HTTP {outcome.status_code}")

    def _recorded_for(self, event_detail: Mapping[str, Any]) -> dict[str, Any]:
        """The job's recorded notification, if the event is exactly it."""
        try:
            source = SourceObject.model_validate(event_detail.get("source") or {})
        except ValidationError as exc:
            raise CallbackRefusedError("the event names no upload") from exc
        recorded = recorded_outcome(self.dynamodb, self.jobs_table, source)
        if recorded is None:
            raise CallbackRefusedError(f"no job of {source.s3_uri} has ended")
        if recorded != dict(event_detail):
            raise CallbackRefusedError(
                f"the event does not match how the job of {source.s3_uri} ended"
            )
        return recorded

    def _refuse(
        self, detail: Mapping[str, Any], refused: CallbackRefusedError, *, url: str | None
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
        self._put_refusal(detail, url, refused)
        return CallbackReport("refused", refused.message)

    def _put_refusal(
        self, notification: Mapping[str, Any], url: str | None, refused: CallbackRefusedError
    ) -> None:
        note = {"status": "refused", "reason": refused.reason, "message": refused.message}
        if url is not None:
            # Only scheme and host: the path and query may carry the receiver's tokens.
            note["url"] = _redacted(url)
        detail = {**notification, "callback": note}
        try:
            self.events.put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": REFUSED_DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "EventBusName": self.event_bus_name,
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
