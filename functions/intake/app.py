"""Function URL: the HTTP front door (docs/openapi.yaml). An edit request becomes an image
under the input prefix, or a presigned form to upload one; the trigger takes it from there."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from kontext_pipeline.intake.routes import IntakeApi, IntakeSettings, handle_request
from kontext_pipeline.lambda_entry import lambda_entry
from kontext_pipeline.runtime import Runtime


def api_of(runtime: Runtime[IntakeSettings]) -> IntakeApi:
    return runtime.intake_api


def handle(
    raw_event: dict[str, Any], context: LambdaContext, runtime: Runtime[IntakeSettings]
) -> dict[str, Any]:
    return handle_request(raw_event, context, api_of(runtime))


lambda_handler = lambda_entry(handle, IntakeSettings, deps=api_of)
