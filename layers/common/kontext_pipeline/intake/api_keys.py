"""API keys for the intake: made by `kontext-pipeline api-key create NAME`, shown once, and
kept in the jobs table only as a SHA-256 hash (`api-key#<key id>`, no TTL). The function
only checks keys; making, listing and revoking them is the CLI's (kontext_tools.api_keys),
so the function's role cannot.

A key reads `kp_<key id>_<secret>`. The key id finds the item; the secret's hash is
compared in constant time. A revoked key stays listed, and is refused. With no key made,
every request is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import Reason, aws_error_code
from kontext_pipeline.intake.problems import IntakeRefusedError
from kontext_pipeline.jobs.keys import item_key, table_unavailable

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

KEY_PREFIX = "kp_"
ITEM_PREFIX = "api-key#"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    created_at: int
    revoked: bool = False
    daily_images: int | None = None  # the key's own cap (intake/key_caps.py); None: none


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _refused(detail: str) -> IntakeRefusedError:
    return IntakeRefusedError(detail, reason=Reason.UNAUTHORIZED)


@dataclass(frozen=True)
class ApiKeys:
    dynamodb: DynamoDBClient
    table_name: str

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key an `Authorization: Bearer kp_...` header carries; refused otherwise."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refused("send an API key as `Authorization: Bearer kp_...`")
        key_id, _, secret = token.strip().removeprefix(KEY_PREFIX).partition("_")
        item = self._item(key_id) if key_id.isalnum() else None
        stored = item["secret_sha256"]["S"] if item else secret_hash("no such key")
        # Compared even when no item was found, so a missing key takes as long as a wrong one.
        if not hmac.compare_digest(stored, secret_hash(secret)) or item is None:
            raise _refused("the API key is not one this pipeline made")
        api_key = api_key_of(item)
        if api_key.revoked:
            raise _refused(f"the API key {api_key.name!r} was revoked")
        return api_key

    def _item(self, key_id: str) -> dict[str, AttributeValueTypeDef] | None:
        try:
            answer = self.dynamodb.get_item(
                TableName=self.table_name, Key=item_key(ITEM_PREFIX + key_id), ConsistentRead=True
            )
        except ClientError as exc:
            if aws_error_code(exc) == "ValidationException":
                return None
            raise table_unavailable(exc) from exc
        except BotoCoreError as exc:
            raise table_unavailable(exc) from exc
        item: dict[str, AttributeValueTypeDef] | None = answer.get("Item")
        return item


def api_key_of(item: dict[str, AttributeValueTypeDef]) -> ApiKey:
    return ApiKey(
        key_id=str(item["pk"]["S"]).removeprefix(ITEM_PREFIX),
        name=str(item["name"]["S"]),
        created_at=int(item["created_at"]["N"]),
        revoked="revoked_at" in item,
        daily_images=int(item["daily_images"]["N"]) if "daily_images" in item else None,
    )
