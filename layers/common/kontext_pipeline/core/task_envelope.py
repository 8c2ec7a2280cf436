"""What the state machine hands a task, read once by its handler: the envelope parsed (its
model is models.TaskEnvelope), and the job's object key, model request id and execution on
every log line from then on.

    envelope = read_task_envelope(event, TaskEnvelope[ModelJob])    # functions/<name>/app.py
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from kontext_pipeline.core.models import TaskEnvelope
from kontext_pipeline.core.observability import logger

EnvelopeT = TypeVar("EnvelopeT", bound=TaskEnvelope[Any])


def read_task_envelope(event: Mapping[str, Any], envelope_type: type[EnvelopeT]) -> EnvelopeT:
    """The task's envelope; its object key, request id and execution join every log line.

    A key the job does not know yet (no request before the submit) is left out of the line.
    """
    envelope = envelope_type.model_validate(event)
    source = _field(envelope.job, "source")
    logger.append_keys(
        object_key=_field(source, "key"),
        model_request_id=_field(envelope.job, "request_id"),
        execution=envelope.execution_id,
    )
    return envelope


def _field(value: Any, name: str) -> Any:
    """A model's field, or a state's entry (the failure branch takes the state as it is)."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)
