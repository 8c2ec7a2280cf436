"""Every refusal the intake gives is a problem document (RFC 9457): `type` is stable and
names the reason in the README's failure table, `detail` says what to change."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from kontext_pipeline.core.errors import PipelineError, Reason

PROBLEM_TYPE_PREFIX = "urn:kontext-pipeline:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

# The HTTP status each refusal answers with; any other reason a request meets is the
# caller's input (400).
STATUS_OF_REASON: dict[str, int] = {
    Reason.UNAUTHORIZED: 401,
    Reason.EDIT_NOT_FOUND: 404,
    Reason.IDEMPOTENCY_CONFLICT: 409,
    Reason.REQUEST_TOO_LARGE: 413,
    Reason.KEY_DAILY_CAP_REACHED: 429,
    Reason.IMAGE_TOO_LARGE: 413,
    Reason.NOT_AN_IMAGE: 415,
    Reason.IMAGE_URL_REFUSED: 422,
    # The caller's URL did not give an image in time: the request cannot be met as sent.
    Reason.IMAGE_FETCH_FAILED: 422,
    Reason.STORAGE_UNAVAILABLE: 503,
}


class IntakeRefusedError(PipelineError):
    """A request the intake does not take, with the reason its problem document names."""

    default_reason = Reason.INVALID_REQUEST


def problem_response(reason: str, detail: str, status: int | None = None) -> Response[Any]:
    status = status or STATUS_OF_REASON.get(reason, 400)
    document = {
        "type": PROBLEM_TYPE_PREFIX + reason,
        "title": reason.replace("_", " "),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(
        status_code=status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=json.dumps(document),
        headers=headers,
    )


def problem_for(error: PipelineError) -> Response[Any]:
    """The problem document of a pipeline error met while taking a request."""
    return problem_response(error.reason, error.message)
