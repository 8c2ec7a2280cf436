"""What the model took lately, kept per model in the jobs table.

The poll plan gathers its looks around a typical run. A configured guess is wrong for most
deployments (the template's 20 s against a 5 s model) and drifts with load, so each job
that completes folds its run time into one item per model, `model-run#<model path>`
(CollectOutputs), and each submit reads it (SubmitEdit) to plan that job's polls.

The average is exponentially weighted, so the last few runs count most. Two completions
at the same instant may each overwrite the other's update; that drops one sample of an
average over many, so no lock or condition is taken. Both calls are best effort: a job
never fails because its run time could not be read or kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.jobs_table import item_key
from kontext_pipeline.observability import logger

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Each new run moves the average 30% of the way: after five runs a change of model speed
# is mostly learned, and one odd run moves it little.
NEW_RUN_WEIGHT = 0.3
# A model unused for a month may have changed: its record expires and the guess is used.
RECORD_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class RecentRunTimes:
    dynamodb: DynamoDBClient
    table_name: str
    model_path: str

    @property
    def _key(self) -> dict[str, AttributeValueTypeDef]:
        return item_key(f"model-run#{self.model_path}")

    def typical_seconds(self) -> float | None:
        """The recent typical run, or None when none is known (or the table is unreadable)."""
        try:
            item = self.dynamodb.get_item(TableName=self.table_name, Key=self._key).get("Item")
        except (ClientError, BotoCoreError) as exc:
            logger.warning("recent run time unreadable", extra={"why": str(exc)})
            return None
        if not item or "typical_seconds" not in item:
            return None
        return float(item["typical_seconds"]["N"])

    def record(self, run_seconds: float) -> None:
        """Fold one completed run into the average."""
        if run_seconds <= 0:
            return
        earlier = self.typical_seconds()
        typical = (
            run_seconds
            if earlier is None
            else (1 - NEW_RUN_WEIGHT) * earlier + NEW_RUN_WEIGHT * run_seconds
        )
        now = int(time.time())
        try:
            self.dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    **self._key,
                    "typical_seconds": {"N": f"{typical:.3f}"},
                    "last_seconds": {"N": f"{run_seconds:.3f}"},
                    "updated_at": {"N": str(now)},
                    "expires_at": {"N": str(now + RECORD_TTL_SECONDS)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("recent run time not kept", extra={"why": str(exc)})
