"""What the model took lately, kept per model in the jobs table.

The poll plan gathers its looks around a typical run. A configured guess is wrong for most
deployments (the template's 20 s against a 5 s model) and drifts with load, so each job
that completes folds its run time into one item per model, `model-run#<model path>`
(CollectOutputs), and each submit reads it (SubmitEdit) to plan that job's polls.

The average is exponentially weighted, so the last few runs count most, except when a run
disagrees with it by more than half again (a model made faster or slower, a new version
behind the same path): that run replaces the average, so one job corrects what the next
job plans from, instead of five. A record past its TTL counts as none even before
DynamoDB removes it (its TTL sweep may take days). Two completions
at the same instant may each overwrite the other's update; that drops one sample of an
average over many, so no lock or condition is taken. Both calls are best effort: a job
never fails because its run time could not be read or kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.observability import logger
from kontext_pipeline.jobs.keys import item_key

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Each new run moves the average 30% of the way: after five runs a change of model speed
# is mostly learned, and one odd run moves it little.
NEW_RUN_WEIGHT = 0.3
# A run this much longer or shorter than the average is a changed model, not an odd run.
DISAGREEMENT_RATIO = 1.5
# A model unused for a month may have changed: its record expires and the guess is used.
RECORD_TTL_SECONDS = 30 * 24 * 3600


def folded(earlier: float | None, run_seconds: float) -> float:
    """The new typical run: the run itself when there is none or it disagrees by more than
    DISAGREEMENT_RATIO either way, else the exponentially weighted average."""
    if earlier is None or earlier <= 0:
        return run_seconds
    if max(earlier, run_seconds) / min(earlier, run_seconds) > DISAGREEMENT_RATIO:
        return run_seconds
    return (1 - NEW_RUN_WEIGHT) * earlier + NEW_RUN_WEIGHT * run_seconds


@dataclass(frozen=True)
class RecentRunTimes:
    dynamodb: DynamoDBClient
    table_name: str
    model_path: str

    @property
    def _key(self) -> dict[str, AttributeValueTypeDef]:
        return item_key(f"model-run#{self.model_path}")

    def typical_seconds(self, now: float | None = None) -> float | None:
        """The recent typical run, or None when none is known, its record is past its TTL,
        or the table is unreadable."""
        try:
            item = self.dynamodb.get_item(TableName=self.table_name, Key=self._key).get("Item")
        except (ClientError, BotoCoreError) as exc:
            logger.warning("recent run time unreadable", extra={"why": str(exc)})
            return None
        if not item or "typical_seconds" not in item:
            return None
        expires_at = float(item.get("expires_at", {}).get("N", "inf"))
        if expires_at <= (time.time() if now is None else now):
            return None
        return float(item["typical_seconds"]["N"])

    def record(self, run_seconds: float) -> None:
        """Fold one completed run into the average."""
        if run_seconds <= 0:
            return
        typical = folded(self.typical_seconds(), run_seconds)
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
