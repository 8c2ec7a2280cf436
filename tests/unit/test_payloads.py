"""The payloads the state machine hands the tasks parse into the package's models."""

from __future__ import annotations

from kontext_pipeline.models import JobStart, ModelJob, TaskEnvelope

from tests.conftest import load_event


def test_the_submit_payload_is_the_execution_input_and_its_id() -> None:
    envelope = TaskEnvelope[JobStart].model_validate(load_event("task_submit_edit"))
    assert envelope.job.source.key == "inputs/kitchen-table.jpg"
    assert (envelope.execution_id or "").startswith("arn:aws:states:")
    # The submit's ledger key is the execution name the trigger derived from the same source
    assert envelope.job.source.execution_name.startswith("kitchen-table-")


def test_the_poll_payload_is_a_model_job() -> None:
    envelope = TaskEnvelope[ModelJob].model_validate(load_event("task_check_status"))
    assert envelope.job.request_id == "e36fc67f-afa7-416a-a288-50d90a630d7a"
    assert envelope.job.options.output_format == "png"
