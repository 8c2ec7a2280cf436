"""ReceiveWebhook: the model's signed webhook, checked, handed to the waiting execution.

What is checked, in order, is docs/security.md's list (model_queue/webhooks.py checks the
signature, jobs/webhook_rendezvous.py that the request is ours and the webhook new).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kontext_pipeline.core.config import (
    HttpSettings,
    JobsTableSettings,
    ModelSettings,
    WebhookSettings,
)
from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous
from kontext_pipeline.model_queue.webhooks import JwksCache, VerifiedWebhook, verify_webhook


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]
    body: bytes


class ReceiveWebhookSettings(ModelSettings, HttpSettings, JobsTableSettings, WebhookSettings):
    """What functions/receive_webhook reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class ReceiveWebhookDeps:
    jwks: JwksCache
    rendezvous: WebhookRendezvous
    # When set, a webhook for another fal account is refused (FalUserId).
    fal_user_id: str | None = None


def run(request: WebhookRequest, deps: ReceiveWebhookDeps) -> tuple[VerifiedWebhook, str]:
    """The verified webhook and what became of it; WebhookRejectedError when it fails a check."""
    webhook = verify_webhook(request.headers, request.body, deps.jwks, user_id=deps.fal_user_id)
    return webhook, deps.rendezvous.record_webhook(webhook)
