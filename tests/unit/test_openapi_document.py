"""docs/openapi.yaml is a valid OpenAPI document, and says what the intake does: its
routes, the model options the trigger takes, and the status of every refusal."""

from __future__ import annotations

import re
from typing import Any

import yaml
from kontext_pipeline.core.models import EditOptions
from kontext_pipeline.intake.problems import STATUS_OF_REASON
from openapi_spec_validator import validate

from tests.conftest import ROOT

DOCUMENT: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
ROUTES = ROOT / "layers" / "common" / "kontext_pipeline" / "intake" / "routes.py"
REQUEST_FIELDS = {"prompt", "image_url", "upload", "content_type", "callback_url", "metadata"}


def test_the_document_is_valid_openapi() -> None:
    # Given docs/openapi.yaml / When it is validated / Then no error is raised
    validate(DOCUMENT)


def test_every_route_of_the_intake_is_a_path_of_the_document() -> None:
    # Given the routes registered on the resolver
    routes = re.findall(r'@app\.(get|post)\("([^"]+)"\)', ROUTES.read_text(encoding="utf-8"))
    # When each is written as an OpenAPI path / Then the document has it, with its method
    for method, path in routes:
        openapi_path = re.sub(r"<(\w+)>", r"{\1}", path)
        assert method in DOCUMENT["paths"][openapi_path], f"{method.upper()} {openapi_path}"
    assert len(routes) == sum(len(operations) for operations in DOCUMENT["paths"].values())


def test_the_request_documents_exactly_the_model_options_the_trigger_takes() -> None:
    # Given the request schema's properties
    properties = set(DOCUMENT["components"]["schemas"]["EditRequest"]["properties"])
    # When the intake's own fields are left out / Then the rest are the model's options
    assert properties - REQUEST_FIELDS == set(EditOptions.model_fields)


def test_every_refusal_status_is_documented_for_the_post() -> None:
    # Given the status each refusal answers with
    documented = set(DOCUMENT["paths"]["/v1/edits"]["post"]["responses"])
    # When they are compared / Then each is a documented answer (400 for the rest)
    assert {str(status) for status in STATUS_OF_REASON.values()} - {"404"} <= documented
    assert "400" in documented
