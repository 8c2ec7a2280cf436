"""Per-job callbacks: the job's notification POSTed to the upload's `callback-url`, signed
the way the Standard Webhooks spec says, retried within a budget.

    urls.py      which URLs may be called (the SSRF rules) and where the upload names one
    signing.py   the Standard Webhooks signature, its secret and the webhook id
    delivery.py  the signed POST to the checked address, retried within a budget

The step that puts them together, for a finished job, is steps/post_signed_notification.py.
"""

from kontext_pipeline.notifications.callbacks.delivery import (
    DeliveryOutcome,
    RetryBudget,
    post_signed_notification,
)
from kontext_pipeline.notifications.callbacks.signing import (
    SignedMessage,
    displayed_secret,
    resolve_signing_key,
    signing_key,
    webhook_id_for,
)
from kontext_pipeline.notifications.callbacks.urls import (
    CallbackRules,
    CallbackTarget,
    callback_url_from_metadata,
    check_callback_url,
    read_callback_url,
)

__all__ = [
    "CallbackRules",
    "CallbackTarget",
    "DeliveryOutcome",
    "RetryBudget",
    "SignedMessage",
    "callback_url_from_metadata",
    "check_callback_url",
    "displayed_secret",
    "post_signed_notification",
    "read_callback_url",
    "resolve_signing_key",
    "signing_key",
    "webhook_id_for",
]
