"""A finished job's callback: read the upload's callback-url, check it against the rules,
then deliver the signed notification, or put the refusal on the bus and call nobody."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from botocore.exceptions import BotoCoreError, ClientError

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
from kontext_pipeline.outcomes import EVENT_SOURCE

if TYPE_CHECKING:
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
    rules: CallbackRules
    signing_key_source: Callable[[], bytes]
    resolve: Resolver = system_resolver

    def deliver_or_note(self, notification: Mapping[str, Any]) -> CallbackReport:
        """POST a finished job's notification to its upload's callback-url, if it has one.

        A refused URL is never requested: the refusal is logged and put on the bus as a
        `Kontext Callback Refused` event whose detail is the notification with a
        `callback` note (`reason: callback_refused` and the rule broken).
        """
        source = SourceObject.model_validate(notification.get("source") or {})
        url = read_callback_url(self.s3, source)
        if url is None:
            return CallbackReport("none", "the upload has no callback-url")
        try:
            target = check_callback_url(url, self.rules, resolve=self.resolve)
        except CallbackRefusedError as exc:
            logger.warning(
                "callback refused",
                extra={"reason": exc.reason, "why": exc.message, "object_key": source.key},
            )
            self._put_refusal(notification, url, exc)
            return CallbackReport("refused", exc.message)
        outcome = deliver_callback(self.http, target, notification, key=self.signing_key_source())
        if outcome.outcome == "rejected":
            logger.warning(
                "callback rejected by the receiver",
                extra={"status": outcome.status_code, "webhook_id": outcome.webhook_id},
            )
        return CallbackReport(outcome.outcome, f"HTTP {outcome.status_code}")

    def _put_refusal(
        self, notification: Mapping[str, Any], url: str, refused: CallbackRefusedError
    ) -> None:
        detail = {
            **notification,
            "callback": {
                "status": "refused",
                "reason": refused.reason,
                "message": refused.message,
                # Only scheme and host: the path and query may carry the receiver's tokens.
                "url": _redacted(url),
            },
        }
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
