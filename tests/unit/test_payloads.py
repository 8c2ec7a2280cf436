"""The payloads the state machine hands the tasks parse into the package's models, and put
their job on every log line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kontext_pipeline.core.models import JobStart, ModelJob, SourceObject, TaskEnvelope
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.task_envelope import read_task_envelope

from tests.conftest import load_event


def test_the_submit_payload_is_the_execution_input_and_its_id() -> None:
    # Given the sample SubmitEdit task
    # When it is read as the state machine hands it over
    envelope = TaskEnvelope[JobStart].model_validate(load_event("task_submit_edit"))
    # Then it is the execution's input (the upload) and the execution's id
    assert envelope.job.source.key == "inputs/kitchen-table.jpg"
    assert (envelope.execution_id or "").startswith("arn:aws:states:")
    # The submit's ledger key is the execution name the trigger derived from the same source
    assert envelope.job.source.execution_name.startswith("kitchen-table-")


def test_the_poll_payload_is_a_model_job() -> None:
    # Given the sample CheckStatus task
    # When it is read as the state machine hands it over
    envelope = TaskEnvelope[ModelJob].model_validate(load_event("task_check_status"))
    # Then it is the job the submit returned
    assert envelope.job.request_id == "e36fc67f-afa7-416a-a288-50d90a630d7a"
    assert envelope.job.options.output_format == "png"


def test_a_null_version_id_is_never_a_pin() -> None:
    # Given an object version, an object written while versioning was off (S3 says "null"),
    # and an object whose version is unknown
    cases = [("3HL4kqtJlcpXroDTDmJ", "3HL4kqtJlcpXroDTDmJ"), ("null", None), (None, None)]
    for version_id, pin in cases:
        source = SourceObject(bucket="b", key="inputs/a.png", version_id=version_id, etag="e")
        # When a read of it is pinned / Then only a real version id is a pin
        assert source.pinned_version == pin
    # And "null" names the job as an unknown version does
    null = SourceObject(bucket="b", key="inputs/a.png", version_id="null", etag="e")
    unknown = SourceObject(bucket="b", key="inputs/a.png", etag="e")
    assert null.execution_name == unknown.execution_name


@pytest.fixture
def log_keys() -> Iterator[None]:
    """The logger's keys start empty and are cleared after, as each invocation's are."""
    logger.clear_state()
    yield
    logger.clear_state()


@pytest.mark.usefixtures("log_keys")
def test_a_tasks_envelope_puts_its_job_on_every_log_line() -> None:
    # Given the sample CheckStatus task
    event = load_event("task_check_status")
    # When its handler reads it
    envelope = read_task_envelope(event, TaskEnvelope[ModelJob])
    # Then its object key, request id and execution join every log line
    keys = logger.get_current_keys()
    assert keys["object_key"] == envelope.job.source.key == "inputs/kitchen-table.jpg"
    assert keys["model_request_id"] == "e36fc67f-afa7-416a-a288-50d90a630d7a"
    assert keys["execution"] == event["execution_id"]


@pytest.mark.usefixtures("log_keys")
def test_what_the_job_does_not_know_yet_stays_off_the_log_line() -> None:
    # Given the sample SubmitEdit task (no request yet), and a failure state with no source
    submit = load_event("task_submit_edit")
    broken: dict[str, Any] = {"job": {"error": {"Error": "States.Timeout"}}}
    # When their handlers read them
    read_task_envelope(submit, TaskEnvelope[JobStart])
    submit_keys = dict(logger.get_current_keys())
    read_task_envelope(broken, TaskEnvelope[dict[str, Any]])
    # Then the submit logs its object and execution without a request id
    assert submit_keys["object_key"] == "inputs/kitchen-table.jpg"
    assert submit_keys["model_request_id"] is None
    # And the broken state is still read (the failure branch reports it), its keys empty
    assert logger.get_current_keys()["object_key"] is None
