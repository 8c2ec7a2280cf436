"""Run the project's own Lambda handlers in-process when moto invokes a function.

moto reaches `LambdaFunction._invoke_lambda(self, event)` for every invocation (S3
notifications, `arn:aws:states:::lambda:invoke` tasks, direct Invoke) and would start a
Docker container there. This adapter runs the handler from the function's CodeUri
instead, in this process, with the function's environment and a Lambda context, and
answers the way Lambda does: the JSON result, or `{"errorMessage", "errorType",
"stackTrace"}` with the error flag, and "Sandbox.Timedout" past the function's timeout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from kontext_tools.local.stack import FunctionSource

# The hop from S3's event to the function's start, as Lambda's async queue adds one.
ASYNC_INVOKE_DELAY_SECONDS = 0.1


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: float
    aws_request_id: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class DeployedFunction:
    """What moto knows of the function being invoked."""

    name: str
    arn: str
    environment: dict[str, str]
    timeout: float
    memory: int


@dataclass
class InvocationRecord:
    function_name: str
    event: Any
    errored: bool
    error_type: str | None
    duration_seconds: float
    memory_mb: int


class InProcessLambdas:
    """Registry of the stack's functions and the patch that routes moto's invocations here."""

    def __init__(
        self,
        functions: dict[str, FunctionSource],
        deployment_id: str,
        *,
        async_configs: dict[str, dict[str, Any]] | None = None,
        sqs: Any = None,
    ) -> None:
        self._functions = functions
        self._async_configs = async_configs or {}
        self._sqs = sqs
        self._deployment_id = deployment_id
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()
        self._async_workers: list[threading.Thread] = []
        self.invocations: list[InvocationRecord] = []

    @contextmanager
    def patched(self) -> Iterator[None]:
        from moto.awslambda.models import LambdaFunction  # noqa: PLC0415 - local run only

        original_invoke_lambda: Callable[..., tuple[str, bool, str]] = LambdaFunction._invoke_lambda
        original_invoke: Callable[..., Any] = LambdaFunction.invoke
        registry = self
        invocation = threading.local()

        def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
            # S3 notifications arrive with no headers: they are asynchronous, like Event.
            headers = request_headers or {}
            invocation.type = headers.get(
                "x-amz-invocation-type", "Event" if not headers else "RequestResponse"
            )
            return original_invoke(self, body, request_headers, response_headers)

        def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
            if self.function_name not in registry._functions:
                return original_invoke_lambda(self, event)
            function = DeployedFunction(
                name=self.function_name,
                arn=self.function_arn,
                environment=dict(self.environment_vars),
                timeout=float(self.timeout),
                memory=int(self.memory_size),
            )
            if getattr(invocation, "type", "RequestResponse") == "Event":
                return registry.invoke_async(function, event)
            return registry.invoke(function, event)

        LambdaFunction.invoke = invoke  # type: ignore[method-assign]
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        try:
            with warnings.catch_warnings():
                # Handlers running at once here share one Metrics object (in Lambda each
                # sandbox has its own): one's flush can leave another nothing to publish.
                warnings.filterwarnings("ignore", "No application metrics", UserWarning)
                yield
        finally:
            LambdaFunction.invoke = original_invoke  # type: ignore[method-assign]
            LambdaFunction._invoke_lambda = original_invoke_lambda  # type: ignore[method-assign]

    def invoke(self, function: DeployedFunction, event: Any) -> tuple[str, bool, str]:
        function_name, timeout = function.name, function.timeout
        module = self._load(function_name, function.environment)
        source = self._functions[function_name]
        handler = getattr(module, source.handler.rsplit(".", 1)[1])
        context = LocalLambdaContext(
            function_name=function_name,
            memory_limit_in_mb=function.memory,
            invoked_function_arn=function.arn,
            timeout_seconds=timeout,
            aws_request_id=str(uuid.uuid4()),
        )
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = handler(event if event is not None else {}, context)
            except Exception as exc:  # any failure is reported to the caller, as Lambda does
                outcome["error"] = {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_exception(exc)[-6:],
                }

        worker = threading.Thread(target=run, name=f"lambda-{function_name}", daemon=True)
        started = time.perf_counter()
        worker.start()
        worker.join(timeout)
        duration = time.perf_counter() - started
        if worker.is_alive():
            # Like Lambda, the caller sees a timeout; the abandoned work may still finish.
            outcome = {
                "error": {
                    "errorMessage": f"Task timed out after {timeout:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                }
            }
        # Metrics are disabled locally (there is no CloudWatch); Powertools then keeps every
        # value until it holds 100 and prints them. Dropping them per invocation is what a
        # flush would do. (Imported here: the package's Logger must be created after the
        # functions' environment is in place.)
        from kontext_pipeline.observability import metrics  # noqa: PLC0415

        metrics.clear_metrics()
        errored = "error" in outcome
        self.invocations.append(
            InvocationRecord(
                function_name,
                event,
                errored,
                outcome["error"]["errorType"] if errored else None,
                duration,
                function.memory,
            )
        )
        body = outcome["error"] if errored else outcome.get("result")
        return json.dumps(body, default=str), errored, ""

    def invoke_async(self, function: DeployedFunction, event: Any) -> tuple[str, bool, str]:
        """Asynchronous invocation (S3 notifications, InvocationType=Event): the event is
        queued, Lambda runs it a moment later, retries a failure, then hands the event to
        the on-failure destination.

        moto sends the notification from inside PutObject, before the object's metadata is
        stored; running the function on another thread after a short hop, as Lambda's own
        queue would, lets the upload finish first. (AWS waits a minute or two between
        attempts; here, none.)
        """
        worker = threading.Thread(
            target=self._run_async,
            args=(function, event),
            name=f"async-{function.name}",
            daemon=True,
        )
        with self._lock:
            self._async_workers.append(worker)
        worker.start()
        return "", False, ""

    def drain(self, timeout: float = 60.0) -> None:
        """Wait for the asynchronous invocations started so far to finish."""
        with self._lock:
            workers = list(self._async_workers)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _run_async(self, function: DeployedFunction, event: Any) -> None:
        time.sleep(ASYNC_INVOKE_DELAY_SECONDS)
        config = self._async_configs.get(function.name, {})
        attempts = 1 + int(config.get("MaximumRetryAttempts", 2))
        for _ in range(attempts):
            payload, errored, _logs = self.invoke(function, event)
            if not errored:
                return
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination and self._sqs is not None:
            self._sqs.send_message(
                QueueUrl=self._sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])[
                    "QueueUrl"
                ],
                MessageBody=json.dumps(
                    {
                        "version": "1.0",
                        "requestContext": {
                            "functionArn": function.arn,
                            "condition": "RetriesExhausted",
                            "approximateInvokeCount": attempts,
                        },
                        "requestPayload": event,
                        "responseContext": {"functionError": "Unhandled"},
                        "responsePayload": json.loads(payload),
                    }
                ),
            )

    def _load(self, function_name: str, environment: dict[str, str]) -> ModuleType:
        """Import the handler module once per function, with its environment: a cold start."""
        with self._lock:
            module = self._modules.get(function_name)
            if module is not None:
                return module
            source = self._functions[function_name]
            os.environ.update(environment)
            module_file = Path(source.code_dir) / (source.handler.rsplit(".", 1)[0] + ".py")
            module_name = f"kontext_local_{self._deployment_id}_{source.logical_id}"
            spec = importlib.util.spec_from_file_location(module_name, module_file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {module_file}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._modules[function_name] = module
            return module
