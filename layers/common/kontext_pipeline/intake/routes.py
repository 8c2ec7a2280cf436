"""The intake's routes on Powertools' function URL resolver:

    POST /v1/edits            202 an edit from an image_url; 201 an upload form
    GET  /v1/edits/{id}       where the edit stands, with links to its outputs once done

Every request names its caller first (an API key, or IAM when IntakeAuth is `iam` and the
function URL has checked the signature); every refusal is a problem document. A POST with
an `Idempotency-Key` is made once per key and body (Powertools Idempotency on the jobs
table): the same key and body answer the first answer again, another body gets 409.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response

from kontext_pipeline.core.config import (
    HttpSettings,
    IntakePolicySettings,
    JobsTableSettings,
    ModelSettings,
    ScopeSettings,
)
from kontext_pipeline.core.errors import PipelineError, Reason
from kontext_pipeline.intake.api_keys import ApiKey, ApiKeys
from kontext_pipeline.intake.edits import IntakeDeps, create_edit, edit_status
from kontext_pipeline.intake.problems import IntakeRefusedError, problem_for, problem_response
from kontext_pipeline.intake.requests import parse_json_body

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kontext_pipeline.intake.idempotent_create import IdempotentCreate

MAX_BODY_BYTES = 64 * 1024  # a request names its image; it never carries one

app = LambdaFunctionUrlResolver()


class IntakeSettings(
    IntakePolicySettings, ScopeSettings, JobsTableSettings, HttpSettings, ModelSettings
):
    """What functions/intake reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class IntakeApi:
    """What the routes work with, built once per cold start (Runtime.intake_api)."""

    deps: IntakeDeps
    keys: ApiKeys
    auth: Literal["key", "iam"]

    def caller(self, headers: dict[str, str], iam_arn: str | None) -> ApiKey:
        if self.auth == "key":
            return self.keys.authenticate(headers.get("authorization"))
        # The function URL (AuthType AWS_IAM) has checked the signature and names the
        # caller; a request without one did not come through it.
        if not iam_arn:
            raise IntakeRefusedError("no AWS-signed caller", reason=Reason.UNAUTHORIZED)
        return ApiKey(key_id=f"iam:{iam_arn}", name=iam_arn, created_at=0)

    @cached_property
    def create_once(self) -> IdempotentCreate:
        """Imported with the first Idempotency-Key: Powertools Idempotency is not every
        request's cold start."""
        from kontext_pipeline.intake.idempotent_create import IdempotentCreate  # noqa: PLC0415

        return IdempotentCreate(self.deps)


def handle_request(event: dict[str, Any], context: LambdaContext, api: IntakeApi) -> dict[str, Any]:
    app.append_context(api=api, lambda_context=context)  # type: ignore[no-untyped-call]
    try:
        return app.resolve(event, context)
    finally:
        app.clear_context()  # type: ignore[no-untyped-call]


def _api() -> IntakeApi:
    api: IntakeApi = app.context["api"]
    return api


def _caller(api: IntakeApi) -> ApiKey:
    event = app.current_event
    iam = event.request_context.authorizer.iam if event.request_context.authorizer else None
    return api.caller(dict(event.headers), iam.user_arn if iam else None)


def _body_bytes(body: str, base64_encoded: bool) -> bytes:
    """The body as sent (Powertools' decoded_body would fail on bytes that are not UTF-8)."""
    return base64.b64decode(body) if base64_encoded else body.encode()


def _json(status: int, document: dict[str, Any]) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(document))


@app.post("/v1/edits")
def post_edit() -> Response[Any]:
    api = _api()
    caller = _caller(api)
    event = app.current_event
    raw = _body_bytes(event.body or "", bool(event.is_base64_encoded))
    if len(raw) > MAX_BODY_BYTES:
        raise IntakeRefusedError(
            f"the body is over {MAX_BODY_BYTES} bytes: send the image by image_url or upload",
            reason=Reason.REQUEST_TOO_LARGE,
        )
    body = parse_json_body(raw)
    idempotency_key = app.current_event.headers.get("idempotency-key", "").strip()
    if idempotency_key:
        context = app.context["lambda_context"]
        status, document = api.create_once(body, caller, idempotency_key[:255], context)
    else:
        status, document = create_edit(body, caller, api.deps)
    return _json(status, document)


@app.get("/v1/edits/<edit_id>")
def get_edit(edit_id: str) -> Response[Any]:
    api = _api()
    return _json(200, edit_status(edit_id, _caller(api), api.deps))


@app.exception_handler(PipelineError)  # type: ignore[untyped-decorator]
def refused(error: PipelineError) -> Response[Any]:
    return problem_for(error)


@app.not_found
def no_route(_: Exception) -> Response[Any]:
    return problem_response(
        Reason.INVALID_REQUEST, "no such route: POST /v1/edits, GET /v1/edits/{id}", 404
    )
