"""`POST /v1/edits` with an `Idempotency-Key`: made once per caller, key and body, with
Powertools Idempotency on the jobs table. The same key and body answer the first answer
again (never a second upload or submit); the same key with another body is refused (409),
as is a retry while the first is still being made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from kontext_pipeline.core.errors import Reason
from kontext_pipeline.intake.api_keys import ApiKey
from kontext_pipeline.intake.edits import IntakeDeps, create_edit
from kontext_pipeline.intake.problems import IntakeRefusedError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

IDEMPOTENCY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class IdempotentCreate:
    deps: IntakeDeps
    _config: IdempotencyConfig = field(
        default_factory=lambda: IdempotencyConfig(
            event_key_jmespath="[api_key_id, idempotency_key]",
            payload_validation_jmespath="body",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_SECONDS,
        )
    )

    def __call__(
        self, body: dict[str, Any], caller: ApiKey, idempotency_key: str, context: LambdaContext
    ) -> tuple[int, dict[str, Any]]:
        self._config.register_lambda_context(context)
        request = {"api_key_id": caller.key_id, "idempotency_key": idempotency_key, "body": body}
        try:
            answer: dict[str, Any] = self._create(request=request, caller=caller)
        except IdempotencyValidationError as exc:
            raise IntakeRefusedError(
                "this Idempotency-Key was used with another body",
                reason=Reason.IDEMPOTENCY_CONFLICT,
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise IntakeRefusedError(
                "a request with this Idempotency-Key is still being made: retry shortly",
                reason=Reason.IDEMPOTENCY_CONFLICT,
            ) from exc
        return int(answer["status"]), dict(answer["document"])

    @cached_property
    def _create(self) -> Callable[..., dict[str, Any]]:
        persistence = DynamoDBPersistenceLayer(
            table_name=self.deps.table_name,
            key_attr="pk",
            expiry_attr="expires_at",
            boto3_client=self.deps.dynamodb,
        )

        @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools types it as Any
            data_keyword_argument="request",
            persistence_store=persistence,
            config=self._config,
            key_prefix="intake-edit",
        )
        def create(request: dict[str, Any], caller: ApiKey) -> dict[str, Any]:
            status, document = create_edit(request["body"], caller, self.deps)
            return {"status": status, "document": document}

        created: Callable[..., dict[str, Any]] = create
        return created
