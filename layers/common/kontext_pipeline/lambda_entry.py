"""Every function's `lambda_handler`: Powertools' log context and metrics around the
function's own `handle`, with the Runtime built once per cold start, or a test's own.

    lambda_handler = lambda_entry(handle, SubmitEditSettings)   # functions/<name>/app.py

The settings model is the function's own (declared beside its step): it is read from the
environment and checked once, at cold start.

Lambda calls `lambda_handler(event, context)`; a test calls it with a third argument, a
Runtime over its own clients (tests/unit/test_handlers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kontext_pipeline.core.config import SettingsPiece, load_settings
from kontext_pipeline.core.observability import logger, metrics
from kontext_pipeline.runtime import Runtime

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SettingsT = TypeVar("SettingsT", bound=SettingsPiece)


class LambdaHandler(Protocol):
    def __call__(
        self, event: dict[str, Any], context: LambdaContext, runtime: Runtime[Any] = ...
    ) -> dict[str, Any]: ...


def lambda_entry(
    handle: Callable[[dict[str, Any], LambdaContext, Runtime[SettingsT]], dict[str, Any]],
    settings: type[SettingsT],
    *,
    deps: Callable[[Runtime[SettingsT]], object] | None = None,
) -> LambdaHandler:
    """The handler Lambda calls; its settings are read and checked now, at cold start.

    `deps`: how a request builds its step's Deps from the Runtime. Built once now as well,
    so the clients every request uses are made during init, not in the first request
    (AWS's advice: initialize SDK clients outside the handler).
    """
    default = Runtime(settings=load_settings(settings))
    if deps is not None:
        _made_at_init(deps, default)

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def lambda_handler(
        event: dict[str, Any], context: LambdaContext, runtime: Runtime[Any] = default
    ) -> dict[str, Any]:
        return handle(event, context, runtime)

    return lambda_handler


def _made_at_init(
    deps: Callable[[Runtime[SettingsT]], object], runtime: Runtime[SettingsT]
) -> None:
    try:
        deps(runtime)
    except Exception as exc:
        # Not fatal here: the first request meets the same failure, and reports it as the
        # job's (a secret not put yet, say), where a failed init would only say "init".
        logger.debug("deps not made at init", extra={"why": str(exc)})
