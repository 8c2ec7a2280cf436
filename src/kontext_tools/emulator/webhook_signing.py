"""fal's webhook signatures: Ed25519 over the request id, user id, timestamp and the body's
SHA-256, with a JWKS of the emulator's own to verify them by."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

USER_ID = "emulator-user"


def sign_webhook(
    key: Ed25519PrivateKey, request_id: str, user_id: str, timestamp: str, body: bytes
) -> dict[str, str]:
    """fal's webhook signature headers for a body."""
    message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()))
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": timestamp,
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


class WebhookSigner:
    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self._kid = uuid.uuid4().hex[:12]

    def headers(
        self, request_id: str, timestamp: str, body: bytes, *, forged: bool = False
    ) -> dict[str, str]:
        """The signature headers; `forged`: signed by a key the JWKS does not hold."""
        key = Ed25519PrivateKey.generate() if forged else self._key
        return sign_webhook(key, request_id, USER_ID, timestamp, body)

    def jwks(self) -> dict[str, Any]:
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": x,
                    "kid": self._kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
            ]
        }
