"""The error contract: the state machines' error names are the pipeline's error classes, and
every reason a notification can carry has a row in the README's failure table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from kontext_pipeline.core import errors
from kontext_pipeline.core.errors import CaughtError, PipelineError, Reason

from tests.conftest import ROOT

# Error names Step Functions, Lambda, the Lambda sandbox and the DynamoDB integration (the
# backfill tally) give themselves: not ours.
SERVICE_PREFIXES = ("States.", "Lambda.", "Sandbox.", "DynamoDB.")


def error_names(node: Any) -> Iterator[str]:
    """Every name in every ErrorEquals of an ASL document (Retry and Catch, nested too)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "ErrorEquals":
                yield from value
            else:
                yield from error_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from error_names(item)


def pipeline_error_classes() -> dict[str, type[PipelineError]]:
    found: dict[str, type[PipelineError]] = {}
    pending: list[type[PipelineError]] = [PipelineError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def failure_table_reasons() -> set[str]:
    """The `code` names in the first column of README.md's Troubleshooting failure table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Troubleshooting") : readme.index("### The command line")]
    rows = (line.split("|")[1] for line in table.splitlines() if line.startswith("| "))
    return {name for cell in rows for name in re.findall(r"`([a-z_<>]+)`", cell)}


def test_every_custom_error_name_in_the_state_machines_is_a_pipeline_error() -> None:
    # Given the error names the state machines retry and catch, less the services' own
    names = {
        name
        for path in sorted((ROOT / "statemachine").glob("*.asl.json"))
        for name in error_names(json.loads(path.read_text(encoding="utf-8")))
        if not name.startswith(SERVICE_PREFIXES)
    }
    # When they are looked up among the pipeline's error classes
    classes = pipeline_error_classes()
    # Then each one is a class a function raises on purpose (a rename would break a Retry)
    assert names, "the state machines name no pipeline error"
    assert sorted(name for name in names if name not in classes) == []
    assert all(issubclass(classes[name], PipelineError) for name in names)


def test_every_reason_has_a_row_in_the_readmes_failure_table() -> None:
    # Given every reason a failure notification can carry
    reasons = {reason.value for reason in Reason}
    # When the README's failure table is read
    documented = failure_table_reasons()
    # Then none is missing, and the model's own error types have their row too
    assert sorted(reasons - documented) == []
    assert "model_<error_type>" in documented


def test_a_caught_error_reads_the_reason_out_of_the_lambda_error_message() -> None:
    # Given what a Catch puts in the state after a Lambda raised a pipeline error
    cause = {"errorMessage": "budget_exceeded: MaxImagesPerDay is 3", "stackTrace": ["..."]}
    state = {"Error": "BudgetExceededError", "Cause": json.dumps(cause)}
    # When it is read back
    caught = CaughtError.from_state(state)
    # Then the reason and the message are split apart, the stack trace left out
    assert caught == CaughtError("BudgetExceededError", "budget_exceeded", "MaxImagesPerDay is 3")


def test_a_caught_error_the_service_named_gets_the_reason_of_its_name() -> None:
    # Given errors Step Functions and Lambda name themselves, with plain-text causes
    timeout = CaughtError.from_state({"Error": "States.Timeout", "Cause": "took too long"})
    crash = CaughtError.from_state({"Error": "Lambda.Unknown", "Cause": "not json {"})
    nothing = CaughtError.from_state({})
    # When read / Then each gets the reason its name means, the cause as the message
    assert (timeout.reason, timeout.message) == (Reason.TIMEOUT, "took too long")
    assert (crash.reason, crash.message) == (Reason.LAMBDA_ERROR, "not json {")
    assert (nothing.error, nothing.reason) == ("States.Unknown", Reason.UNEXPECTED_ERROR)
    assert errors.ERROR_NAME_REASONS["States.TaskFailed"] is Reason.TASK_FAILED


def test_a_failure_the_model_typed_travels_with_its_own_reason() -> None:
    # Given the model's failure with its error type, raised out of a Lambda
    error = errors.ModelRequestFailedError.from_model(
        "the model reported: boom", "image_load_error"
    )
    # When the Catch's state is read back from the text Lambda passed on
    caught = CaughtError.from_state({"Error": "ModelRequestFailedError", "Cause": str(error)})
    # Then the reason is the model's, not the generic one
    assert error.reason == caught.reason == "model_image_load_error"
