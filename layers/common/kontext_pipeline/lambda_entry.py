"""Every function's `lambda_handler`: Powertools' log context and metrics around the
function's own `handle`, with the Runtime built once per cold start, or a test's own.

    lambda_handler = lambda_entry(handle)       # functions/<name>/app.py

Lambda calls `lambda_handler(event, context)`; a test calls it with a third argument, a
Runtime over its own clients (tests/unit/test_handlers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from kontext_pipeline.core.observability import logger, metrics
from kontext_pipeline.runtime import Runtime

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

Handle = Callable[[dict[str, Any], "LambdaContext", Runtime], dict[str, Any]]


class LambdaHandler(Protocol):
    def __call__(
        self, event: dict[str, Any], context: LambdaContext, runtime: Runtime = ...
    ) -> dict[str, Any]: ...


def lambda_entry(handle: Handle) -> LambdaHandler:
    """The handler Lambda calls; its settings are read and checked now, at cold start."""
    default = Runtime()

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def lambda_handler(
        event: dict[str, Any], context: LambdaContext, runtime: Runtime = default
    ) -> dict[str, Any]:
        return handle(event, context, runtime)

    return lambda_handler
