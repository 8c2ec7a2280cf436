"""The jobs table's items: one DynamoDB table, one partition key `pk`, a prefix per kind.

    job#<job key>              the submit claim and record (ledger.py); the concurrency
                               mark `holds_slot` (budget.py)
    webhook#<request id>       the waiting task's token or the early webhook (webhook_rendezvous.py)
    budget#images#<day>        images submitted that UTC day (budget.py)
    budget#in-flight           requests at the model at once (budget.py)
    model-run#<model path>     what the model recently took (run_times.py)
    outcome#<job key>          the job's notification as published (jobs/published.py)
    (Powertools idempotency)   one publish per job and status (notifications/publish.py),
                               one edit per Idempotency-Key (intake/idempotent_create.py)
    api-key#<key id>           an intake API key's hash (intake/api_keys.py); no TTL
    edit#<edit id>             an edit the intake made: its object and key (intake/edits.py)
    api-key-usage#<key>#<day>  images a key's edits asked for that UTC day (intake/key_caps.py)

Every item but the API keys expires by TTL (`expires_at`, seconds since the epoch).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import StorageUnavailableError, aws_error_code

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Long enough for the model's webhook retries (2 hours) and any deadline a user sets.
RECORD_TTL_SECONDS = 7 * 24 * 3600


def item_key(pk: str) -> dict[str, AttributeValueTypeDef]:
    """The key of the item `pk` (one of the kinds above)."""
    return {"pk": {"S": pk}}


def job_item_key(job_key: str) -> dict[str, AttributeValueTypeDef]:
    """The key of a job's own item (`job#<job key>`)."""
    return item_key(f"job#{job_key}")


def webhook_item_key(request_id: str) -> dict[str, AttributeValueTypeDef]:
    """The key of the item where a request's task token and webhook meet."""
    return item_key(f"webhook#{request_id}")


def expires_at(after_seconds: int = RECORD_TTL_SECONDS) -> AttributeValueTypeDef:
    """The `expires_at` attribute value of an item written now."""
    return {"N": str(int(time.time()) + after_seconds)}


def table_unavailable(exc: ClientError | BotoCoreError) -> StorageUnavailableError:
    """A failed jobs-table call as the error the state machine retries."""
    why = aws_error_code(exc) if isinstance(exc, ClientError) else str(exc)
    return StorageUnavailableError(f"jobs table unavailable: {why}")
