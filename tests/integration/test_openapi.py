"""docs/openapi.yaml against the running intake, property-based (schemathesis): requests
generated from the document, sent to the built intake function behind its local function
URL; no answer is a server error, and every answer is one the document describes (status,
content type, schema)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from kontext_tools.api_keys import ApiKeyAdmin
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import ROOT
from tests.integration.conftest import FAST_MODEL

SCHEMA = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.yaml"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def intake() -> Iterator[tuple[str, str]]:
    """The local intake's URL and a key for it. Image URLs may name one host only, which
    resolves nowhere: a generated URL is refused by the rules, never fetched."""
    parameters = {"IntakeUrlHosts": "images.example.invalid"}
    with LocalPipeline(emulator_timing=FAST_MODEL, parameters=parameters) as pipeline:
        admin = ApiKeyAdmin(pipeline.clients.dynamodb, pipeline.outputs["JobsTableName"])
        yield pipeline.outputs["IntakeUrl"].rstrip("/"), admin.create("schemathesis")[1]


@SCHEMA.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_one_the_document_describes(
    case: schemathesis.Case, intake: tuple[str, str]
) -> None:
    # Given a request generated from the document, with a valid key
    base_url, key = intake
    # When it is sent to the intake / Then the answer is no 5xx and matches the document
    case.call_and_validate(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
    )
