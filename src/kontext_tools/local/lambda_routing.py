"""moto's invocations of the stack's functions, routed to the local sandboxes.

moto reaches `LambdaFunction._invoke_lambda(self, event)` for every invocation (S3
notifications, `arn:aws:states:::lambda:invoke` tasks over HTTP, direct Invoke) and would
start a Docker container there; its EventBridge rules raise NotImplementedError for a
Lambda target. While `moto_invocations_routed_to(lambdas)` is active, both are handed to
`lambdas` (lambdas.py) instead: synchronously, or asynchronously as Lambda's event queue
would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from kontext_tools.local.sandbox import DeployedFunction


class FunctionRunner(Protocol):
    """What the routing needs of the stack's functions: lambdas.py's LocalLambdas is one.
    Named here, so this module does not import the module that imports it."""

    def runs(self, function_name: str) -> bool: ...

    def invoke(self, function: DeployedFunction, event: Any) -> tuple[str, bool, str]: ...

    def invoke_async(self, function: DeployedFunction, event: Any) -> tuple[str, bool, str]: ...


@contextmanager
def moto_invocations_routed_to(lambdas: FunctionRunner) -> Iterator[None]:
    with _lambda_invocations(lambdas), _eventbridge_lambda_targets(lambdas):
        yield


@contextmanager
def _lambda_invocations(lambdas: FunctionRunner) -> Iterator[None]:
    """Invoke, S3 notifications and state machine tasks run the function's sandbox."""
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415 - local run only

    original_invoke_lambda: Callable[..., tuple[str, bool, str]] = LambdaFunction._invoke_lambda
    original_invoke: Callable[..., Any] = LambdaFunction.invoke
    invocation = threading.local()

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        # S3 notifications arrive with no headers: they are asynchronous, like Event.
        headers = request_headers or {}
        invocation.type = headers.get(
            "x-amz-invocation-type", "Event" if not headers else "RequestResponse"
        )
        return original_invoke(self, body, request_headers, response_headers)

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        if not lambdas.runs(self.function_name):
            return original_invoke_lambda(self, event)
        function = DeployedFunction.of(self)
        if getattr(invocation, "type", "RequestResponse") == "Event":
            return lambdas.invoke_async(function, event)
        return lambdas.invoke(function, event)

    LambdaFunction.invoke = invoke  # type: ignore[method-assign]
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    try:
        yield
    finally:
        LambdaFunction.invoke = original_invoke  # type: ignore[method-assign]
        LambdaFunction._invoke_lambda = original_invoke_lambda  # type: ignore[method-assign]


@contextmanager
def _eventbridge_lambda_targets(lambdas: FunctionRunner) -> Iterator[None]:
    """EventBridge rules whose target is one of the stack's functions invoke it.

    moto's rules deliver to SQS, logs, archives and buses, and raise NotImplementedError
    for a Lambda target. Here a matching event is handed to the function asynchronously,
    as EventBridge does (with the async retries and on-failure destination of the
    function's EventInvokeConfig), and the rule's other targets get it from moto.
    """
    from moto.events.models import Rule  # noqa: PLC0415 - local run only

    original_send: Callable[..., None] = Rule.send_to_targets
    swap = threading.Lock()

    def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
        ours = [t for t in rule.targets if lambdas.runs(_function_name(t["Arn"]))]
        if ours and rule.event_pattern.matches_event(original_event):
            _invoke_targets(lambdas, ours, _as_delivered_event(original_event))
        others = [t for t in rule.targets if t not in ours]
        if not getattr(original_send, "kontext_local_run", False):
            # moto itself cannot deliver to any function: those of a local stack that
            # has stopped (its rules on the shared default bus outlive it) are dropped.
            others = [t for t in others if ":lambda:" not in str(t["Arn"])]
        if not others:
            return
        with swap:  # moto reads the targets off the rule: hand it only the others
            saved = rule.targets
            rule.targets = others
            try:
                original_send(rule, original_event, transform_input)
            finally:
                rule.targets = saved

    # Another local run in this process may wrap this one: it hands on what is not its own.
    send_to_targets.kontext_local_run = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Rule.send_to_targets = original_send  # type: ignore[method-assign]


def _invoke_targets(lambdas: FunctionRunner, targets: list[Any], event: dict[str, Any]) -> None:
    from moto.awslambda.models import lambda_backends  # noqa: PLC0415 - local run only

    for target in targets:
        arn = str(target["Arn"])
        account, region = arn.split(":")[4], arn.split(":")[3]
        function = lambda_backends[account][region].get_function(_function_name(arn))
        lambdas.invoke_async(DeployedFunction.of(function), event)


def _function_name(arn: str) -> str:
    """`arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]` -> name; else ""."""
    parts = str(arn).split(":")
    return parts[6] if len(parts) > 6 and parts[2] == "lambda" else ""


def _as_delivered_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's internal event as EventBridge hands it to a function (ISO time, no extras)."""
    delivered = {k: v for k, v in event.items() if k != "ingestion-time"}
    when = delivered.get("time")
    if isinstance(when, int | float):
        delivered["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return delivered
