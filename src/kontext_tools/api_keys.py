"""The intake's API keys, managed from the command line (`kontext-pipeline api-key ...`):
made and shown once, listed, revoked. The intake function only checks them
(kontext_pipeline.intake.api_keys), so its role cannot make one."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kontext_pipeline.intake.api_keys import (
    ITEM_PREFIX,
    KEY_PREFIX,
    ApiKey,
    api_key_of,
    secret_hash,
)
from kontext_pipeline.jobs.keys import item_key

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef


@dataclass(frozen=True)
class ApiKeyAdmin:
    dynamodb: DynamoDBClient
    table_name: str

    def create(self, name: str, daily_images: int | None = None) -> tuple[ApiKey, str]:
        """A new key named `name` (with its own daily image cap, if given), and the key
        itself, which is never stored or shown again."""
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        created_at = int(time.time())
        api_key = ApiKey(key_id, name, created_at, daily_images=daily_images)
        item: dict[str, AttributeValueTypeDef] = {
            **item_key(ITEM_PREFIX + key_id),
            "name": {"S": name},
            "secret_sha256": {"S": secret_hash(secret)},
            "created_at": {"N": str(created_at)},
        }
        if daily_images is not None:
            item["daily_images"] = {"N": str(daily_images)}
        self.dynamodb.put_item(
            TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
        return api_key, f"{KEY_PREFIX}{key_id}_{secret}"

    def every_key(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name,
            FilterExpression="begins_with(pk, :prefix)",
            ExpressionAttributeValues={":prefix": {"S": ITEM_PREFIX}},
            ConsistentRead=True,
        )
        keys = [api_key_of(item) for page in pages for item in page.get("Items", [])]
        return sorted(keys, key=lambda key: (key.created_at, key.name))

    def revoke(self, name_or_id: str) -> list[ApiKey]:
        """Revokes every live key with that name (or that key id); the keys revoked."""
        keys = self.every_key()
        matching = [k for k in keys if name_or_id in (k.name, k.key_id) and not k.revoked]
        for api_key in matching:
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=item_key(ITEM_PREFIX + api_key.key_id),
                UpdateExpression="SET revoked_at = :now",
                ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
            )
        return matching
