"""Where moto's server drops what AWS keeps, put it back for the local run.

`SendTaskFailure` over moto's HTTP API passes only the token and the error name on to the
ASL interpreter, although the interpreter takes a cause too; on AWS the cause reaches the
state's Catch (`$.Cause`). The pipeline's failure messages for a job failed by a webhook
travel in that cause, so without it a local run would report less than AWS does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def send_task_failure_keeps_its_cause() -> Iterator[None]:
    from moto.core.responses import EmptyResult  # noqa: PLC0415 - local run only
    from moto.stepfunctions.responses import StepFunctionResponse  # noqa: PLC0415

    original = StepFunctionResponse.send_task_failure

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]
    try:
        yield
    finally:
        StepFunctionResponse.send_task_failure = original  # type: ignore[method-assign]
