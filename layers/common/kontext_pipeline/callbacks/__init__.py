"""Per-job callbacks: the job's notification POSTed to the upload's `callback-url`, signed
the way the Standard Webhooks spec says, retried within a budget.

    urls.py      which URLs may be called (the SSRF rules) and where the upload names one
    signing.py   the Standard Webhooks signature, its secret and the webhook id
    delivery.py  the signed POST to the checked address, retried within a budget
    job.py       a finished job's callback: read the URL, check it, deliver or note the refusal
"""

from kontext_pipeline.callbacks.delivery import DeliveryOutcome, RetryBudget, deliver_callback
from kontext_pipeline.callbacks.job import CallbackReport, JobCallbacks
from kontext_pipeline.callbacks.signing import (
    SignedMessage,
    displayed_secret,
    resolve_signing_key,
    signing_key,
    webhook_id_for,
)
from kontext_pipeline.callbacks.urls import (
    CallbackRules,
    CallbackTarget,
    callback_url_from_metadata,
    check_callback_url,
    read_callback_url,
)

__all__ = [
    "CallbackReport",
    "CallbackRules",
    "CallbackTarget",
    "DeliveryOutcome",
    "JobCallbacks",
    "RetryBudget",
    "SignedMessage",
    "callback_url_from_metadata",
    "check_callback_url",
    "deliver_callback",
    "displayed_secret",
    "read_callback_url",
    "resolve_signing_key",
    "signing_key",
    "webhook_id_for",
]
