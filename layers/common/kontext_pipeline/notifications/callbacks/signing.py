"""The callbacks' signature, as the Standard Webhooks spec says (https://www.standardwebhooks.com/,
the specification in github.com/standard-webhooks/standard-webhooks), so receivers verify
it with the `standardwebhooks` library.

    webhook-id         msg_<hash of the job and its status>: the same for every attempt and
                       every redelivery, so a receiver deduplicates on it
    webhook-timestamp  seconds since the epoch, of this attempt
    webhook-signature  v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The signing key is the base64 part of a `whsec_...` secret kept in Secrets Manager. The
signature is a dozen lines of standard library, so the layer carries no webhook package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.errors import ConfigurationError, Reason

if TYPE_CHECKING:
    from kontext_pipeline.core.secrets import SecretStore

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


@dataclass(frozen=True)
class SignedMessage:
    """A notification as its receiver gets it: one body and one id for every attempt."""

    body: bytes
    webhook_id: str
    key: bytes

    @classmethod
    def of(cls, notification: Mapping[str, Any], key: bytes) -> SignedMessage:
        body = json.dumps(notification, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(body, webhook_id_for(notification), key)

    def headers(self, timestamp: int) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt, signed at `timestamp`."""
        return {
            "webhook-id": self.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.key, self.webhook_id, timestamp, self.body),
        }


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise ConfigurationError(
            "the callback signing secret is not base64", reason=Reason.SECRET_UNAVAILABLE
        ) from exc
    if len(key) < 24:
        raise ConfigurationError(
            "the callback signing secret is shorter than 24 bytes", reason=Reason.SECRET_UNAVAILABLE
        )
    return key


def resolve_signing_key(secret_id: str, secrets: SecretStore) -> bytes:
    """The signing key from Secrets Manager (cached: a rotation lands within minutes)."""
    return signing_key(secrets.read(secret_id, what="the callback signing secret"))


def displayed_secret(raw: str) -> str:
    """The secret as receivers configure it: `whsec_<base64>`."""
    raw = raw.strip()
    return raw if raw.startswith(SECRET_PREFIX) else SECRET_PREFIX + raw


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_id_for(notification: Mapping[str, Any]) -> str:
    """One id per job outcome, stable across attempts and redeliveries."""
    source = notification.get("source") or {}
    identity = "\n".join(
        str(part or "")
        for part in (
            source.get("bucket"),
            source.get("key"),
            source.get("version_id"),
            notification.get("request_id"),
            notification.get("status"),
        )
    )
    return "msg_" + hashlib.sha256(identity.encode()).hexdigest()[:32]
