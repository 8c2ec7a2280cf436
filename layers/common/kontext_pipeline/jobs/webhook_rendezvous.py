"""Completion by the model's signed webhook, with polling as the fallback.

Flow (completion mode `webhook`): SubmitEdit submits with `fal_webhook=<our URL>`; the
state machine's AwaitWebhook task (`lambda:invoke.waitForTaskToken`) records its task
token against the request id; the model POSTs to ReceiveWebhook when the request ends;
a verified webhook (model_queue/webhooks.py) resumes the execution (SendTaskSuccess, or
SendTaskFailure for an ERROR). If no webhook comes in time, the task times out into the
ordinary poll loop.

The webhook and the token can arrive in either order, and the model retries webhooks up
to 10 times over 2 hours, so both sides write to one jobs-table item and whoever finds
the other's half completes the task; Step Functions accepts a token once, so a second
completion, a duplicate or a late webhook is a no-op.

Only our own requests get that item: SubmitEdit marks it expected (`expect_webhook`) as
soon as the queue names the request, and a webhook is recorded only on an expected item
and only once. Anyone can point their own fal request's webhook at our public function
URL; such a webhook, signed by fal but for a request we never submitted, writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import (
    ModelRequestFailedError,
    StorageUnavailableError,
    WebhookRejectedError,
    aws_error_code,
)
from kontext_pipeline.core.models import ModelJob, ModelResult
from kontext_pipeline.jobs.keys import expires_at, table_unavailable, webhook_item_key

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_stepfunctions.client import SFNClient

    # A type only: importing it would load cryptography into every function that frees a
    # slot or marks a request (the jobs store), not only into ReceiveWebhook.
    from kontext_pipeline.model_queue.webhooks import VerifiedWebhook


def expect_webhook(dynamodb: DynamoDBClient, table_name: str, request_id: str) -> None:
    """Mark a request this stack submitted (webhook mode): only its webhook is recorded."""
    try:
        dynamodb.update_item(
            TableName=table_name,
            Key=webhook_item_key(request_id),
            UpdateExpression="SET expected = :yes, expires_at = if_not_exists(expires_at, :ttl)",
            ExpressionAttributeValues={":yes": {"BOOL": True}, ":ttl": expires_at()},
        )
    except (ClientError, BotoCoreError) as exc:
        raise table_unavailable(exc) from exc


@dataclass(frozen=True)
class WebhookRendezvous:
    """Where the waiting task's token and the model's webhook meet (one jobs-table item)."""

    dynamodb: DynamoDBClient
    stepfunctions: SFNClient
    table_name: str

    def register_token(self, job: ModelJob, task_token: str) -> str:
        """Called by AwaitWebhook. Completes at once if the webhook came first."""
        item = self._update(
            job.request_id,
            "SET task_token = :token, job = :job",
            {":token": {"S": task_token}, ":job": {"S": job.model_dump_json()}},
        )
        return self._complete_if_ready(item)

    def record_webhook(self, webhook: VerifiedWebhook) -> str:
        """Called by ReceiveWebhook after verification. Completes if the token is there.

        Written once, and only for a request this stack submitted (`expect_webhook`): a
        webhook seen before answers "duplicate" with no second write; one for a request we
        never submitted raises WebhookRejectedError, having written nothing."""
        values: dict[str, Any] = {":status": {"S": webhook.status}}
        expression = "SET webhook_status = :status"
        if webhook.error:
            expression += ", webhook_error = :error"
            values[":error"] = {"S": webhook.error[:2000]}
        if webhook.error_type:
            expression += ", webhook_error_type = :error_type"
            values[":error_type"] = {"S": webhook.error_type[:200]}
        if webhook.result_json:
            expression += ", webhook_result = :result"
            values[":result"] = {"S": webhook.result_json}
        once = "attribute_exists(expected) AND attribute_not_exists(webhook_status)"
        try:
            item = self._update(webhook.request_id, expression, values, condition=once)
        except ClientError as exc:  # the condition failed: _update raises nothing else so
            seen: Any = exc.response.get("Item") or {}
            if "webhook_status" in seen:
                return "duplicate"
            raise WebhookRejectedError(
                f"request {webhook.request_id} was not submitted by this stack"
            ) from exc
        return self._complete_if_ready(item)

    def _update(
        self,
        request_id: str,
        expression: str,
        values: dict[str, Any],
        *,
        condition: str | None = None,
    ) -> dict[str, Any]:
        """The item after the update; a failed `condition` raises its ClientError."""
        condition_args: dict[str, Any] = (
            {"ConditionExpression": condition, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
            if condition
            else {}
        )
        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name,
                Key=webhook_item_key(request_id),
                UpdateExpression=expression + ", expires_at = if_not_exists(expires_at, :ttl)",
                ExpressionAttributeValues={**values, ":ttl": expires_at()},
                ReturnValues="ALL_NEW",
                **condition_args,
            )
        except ClientError as exc:
            if condition and aws_error_code(exc) == "ConditionalCheckFailedException":
                raise
            raise table_unavailable(exc) from exc
        except BotoCoreError as exc:
            raise table_unavailable(exc) from exc
        attributes: dict[str, Any] = response["Attributes"]
        return attributes

    def _complete_if_ready(self, item: dict[str, Any]) -> str:
        """Resume the execution once both halves are there; a used token is a no-op."""
        if "task_token" not in item or "webhook_status" not in item:
            return "waiting"
        token = item["task_token"]["S"]
        job = ModelJob.model_validate_json(item["job"]["S"])
        try:
            if item["webhook_status"]["S"] == "OK":
                self._succeed(token, job, item.get("webhook_result", {}).get("S"))
            else:
                error = item.get("webhook_error", {}).get("S", "the model reported an error")
                error_type = item.get("webhook_error_type", {}).get("S")
                self._fail(token, ModelRequestFailedError.from_model(error, error_type))
        except ClientError as exc:
            code = aws_error_code(exc)
            if code in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
                return "already_completed"  # a duplicate, a late webhook, or polling won
            raise StorageUnavailableError(f"could not resume the execution: {code}") from exc
        return "completed"

    def _succeed(self, token: str, job: ModelJob, carried: str | None) -> None:
        completed = job.model_copy(
            update={
                "status": "COMPLETED",
                "queue_position": None,
                "next_poll_seconds": 0,
                "result": ModelResult.model_validate_json(carried) if carried else None,
            }
        )
        self.stepfunctions.send_task_success(taskToken=token, output=completed.model_dump_json())

    def _fail(self, token: str, failure: ModelRequestFailedError) -> None:
        """As a Lambda that raised it would: the class name is the error the ASL matches."""
        name = type(failure).__name__
        self.stepfunctions.send_task_failure(
            taskToken=token,
            error=name,
            cause=json.dumps({"errorMessage": str(failure), "errorType": name}),
        )
