"""Run the built Lambda functions, each in processes of its own, when moto invokes them.

moto reaches `LambdaFunction._invoke_lambda(self, event)` for every invocation (S3
notifications, `arn:aws:states:::lambda:invoke` tasks over HTTP, direct Invoke) and would
start a Docker container there. This adapter, in the local run's process (where the moto
server runs), hands the event to a sandbox instead: a process running the Lambda runtime
of `lambda_runtime.py` under the runtime's Python, with only the function's built folder,
its built layers and the runtime's boto3 on its import path, and the function's
environment from the template. As on Lambda, a sandbox is cold-started once, kept warm
between invocations, runs one invocation at a time (more at once start more sandboxes, up
to a bound), and is thrown away when it times out or crashes.

It answers the way Lambda does: the JSON result, or `{"errorMessage", "errorType",
"stackTrace"}` with the error flag, "Sandbox.Timedout" past the function's timeout, and
"Runtime.ImportModuleError" when the handler cannot be imported.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kontext_tools.local.stack import ACCOUNT_ID, REGION, FunctionSource

RUNTIME_SCRIPT = Path(__file__).with_name("lambda_runtime.py")
# The hop from S3's event to the function's start, as Lambda's async queue adds one.
ASYNC_INVOKE_DELAY_SECONDS = 0.1
# Lambda gives an init phase up to 10 s before it counts against the invocation.
INIT_TIMEOUT_SECONDS = 10.0
# Sandboxes per function at once: Lambda's would be up to the account's concurrency; a
# machine of two cores gains nothing from more processes than this.
DEFAULT_MAX_SANDBOXES = 4


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
    cold_start: bool = False


@dataclass(frozen=True)
class RuntimeSetup:
    """How every sandbox is started: interpreter, runtime SDK, AWS endpoint, log sink."""

    python: Path
    runtime_sdk_dir: Path
    aws_environment: Mapping[str, str]
    log: IO[str] | None = None


class FunctionInitError(RuntimeError):
    """A function's handler could not be loaded (import error, missing handler...)."""

    def __init__(self, function_name: str, error: dict[str, Any]) -> None:
        super().__init__(f"{function_name}: {error['errorType']}: {error['errorMessage']}")
        self.error = error


class Sandbox:
    """One warm execution environment of one function."""

    def __init__(
        self, function: DeployedFunction, source: FunctionSource, setup: RuntimeSetup
    ) -> None:
        self.function = function
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        environment = {
            **_lambda_environment(function, source, setup),
            **function.environment,
        }
        sink = setup.log if setup.log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - our own runtime script
            [
                str(setup.python),
                "-I",
                "-S",
                str(RUNTIME_SCRIPT),
                str(request_read),
                str(response_write),
            ],
            cwd=source.code_dir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            pass_fds=(request_read, response_write),
        )
        os.close(request_read)
        os.close(response_write)
        self._requests = os.fdopen(self._request_write, "w", encoding="utf-8")
        self._responses = os.fdopen(self._response_read, "r", encoding="utf-8")
        answer = self._read(INIT_TIMEOUT_SECONDS)
        if answer is None or "init_error" in answer:
            self.kill()
            error = (answer or {}).get("init_error") or {
                "errorMessage": "the runtime did not start (see the local run's log)",
                "errorType": "Runtime.ExitError",
            }
            raise FunctionInitError(function.name, error)

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def invoke(self, event: Any, timeout: float) -> tuple[dict[str, Any], bool]:
        """(body, errored). A sandbox that timed out or died is killed, not reused."""
        request = {
            "event": event if event is not None else {},
            "request_id": str(uuid.uuid4()),
            "deadline_ms": int((time.time() + timeout) * 1000),
            "arn": self.function.arn,
        }
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return _runtime_exit(), True
        answer = self._read(timeout)
        if answer is None:
            timed_out = self.alive
            self.kill()
            if timed_out:
                return {
                    "errorMessage": f"Task timed out after {timeout:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                }, True
            return _runtime_exit(), True
        if "error" in answer:
            return answer["error"], True
        return {"result": answer.get("result")}, False

    def stop(self) -> None:
        """End the process; whoever is invoking it sees the runtime exit."""
        if self._process.poll() is None:
            self._process.kill()

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._requests, self._responses):
            with suppress(OSError):
                stream.close()

    def _read(self, timeout: float) -> dict[str, Any] | None:
        ready, _, _ = select.select([self._responses], [], [], max(0.0, timeout))
        if not ready:
            return None
        line = self._responses.readline()
        if not line:
            return None
        answer: dict[str, Any] = json.loads(line)
        return answer


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


def _runtime_exit() -> dict[str, Any]:
    return {
        "errorMessage": "the function's process exited (see the local run's log)",
        "errorType": "Runtime.ExitError",
    }


def _lambda_environment(
    function: DeployedFunction, source: FunctionSource, setup: RuntimeSetup
) -> dict[str, str]:
    """The variables the Lambda service sets in every execution environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(source.code_dir),
        "_HANDLER": source.handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "KONTEXT_LAYER_DIRS": os.pathsep.join(str(layer) for layer in source.layer_dirs),
        "KONTEXT_RUNTIME_SDK_DIR": str(setup.runtime_sdk_dir),
        **setup.aws_environment,
    }


@dataclass
class _Pool:
    idle: list[Sandbox] = field(default_factory=list)
    busy: set[Sandbox] = field(default_factory=set)
    running: int = 0  # busy, and being started


class LocalLambdas:
    """The stack's functions, their sandboxes, and the patch that routes moto's invocations."""

    def __init__(
        self,
        functions: dict[str, FunctionSource],
        setup: RuntimeSetup,
        *,
        async_configs: dict[str, dict[str, Any]] | None = None,
        sqs: Any = None,
        max_sandboxes: int = DEFAULT_MAX_SANDBOXES,
    ) -> None:
        self._functions = functions
        self._setup = setup
        self._async_configs = async_configs or {}
        self._sqs = sqs
        self._max_sandboxes = max_sandboxes
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Condition()
        self._async_workers: list[threading.Thread] = []
        self._closed = False
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
            function = registry.describe(self)
            if getattr(invocation, "type", "RequestResponse") == "Event":
                return registry.invoke_async(function, event)
            return registry.invoke(function, event)

        LambdaFunction.invoke = invoke  # type: ignore[method-assign]
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        try:
            with self._eventbridge_lambda_targets():
                yield
        finally:
            LambdaFunction.invoke = original_invoke  # type: ignore[method-assign]
            LambdaFunction._invoke_lambda = original_invoke_lambda  # type: ignore[method-assign]
            self.close()

    @contextmanager
    def _eventbridge_lambda_targets(self) -> Iterator[None]:
        """EventBridge rules whose target is one of the stack's functions invoke it.

        moto's rules deliver to SQS, logs, archives and buses, and raise NotImplementedError
        for a Lambda target. Here a matching event is handed to the function asynchronously,
        as EventBridge does (with the async retries and on-failure destination of the
        function's EventInvokeConfig), and the rule's other targets get it from moto.
        """
        from moto.awslambda.models import lambda_backends  # noqa: PLC0415 - local run only
        from moto.events.models import Rule  # noqa: PLC0415

        original_send: Callable[..., None] = Rule.send_to_targets
        registry = self
        swap = threading.Lock()

        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            ours = [t for t in rule.targets if _function_name(t["Arn"]) in registry._functions]
            if ours and rule.event_pattern.matches_event(original_event):
                delivered = _as_delivered_event(original_event)
                for target in ours:
                    arn = str(target["Arn"])
                    account, region = arn.split(":")[4], arn.split(":")[3]
                    function = lambda_backends[account][region].get_function(_function_name(arn))
                    registry.invoke_async(registry.describe(function), delivered)
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

    @staticmethod
    def describe(moto_function: Any) -> DeployedFunction:
        return DeployedFunction(
            name=moto_function.function_name,
            arn=moto_function.function_arn,
            environment={k: str(v) for k, v in dict(moto_function.environment_vars).items()},
            timeout=float(moto_function.timeout),
            memory=int(moto_function.memory_size),
        )

    def warm_up(self) -> None:
        """Cold-start one sandbox per function now, so a broken build fails at once.

        Raises FunctionInitError naming the function and the import error.
        """
        from moto.awslambda.models import lambda_backends  # noqa: PLC0415 - local run only

        backend = lambda_backends[ACCOUNT_ID][REGION]
        functions = [self.describe(backend.get_function(name)) for name in self._functions]
        errors: list[FunctionInitError] = []
        threads = [
            threading.Thread(target=self._warm_one, args=(function, errors), daemon=True)
            for function in functions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _warm_one(self, function: DeployedFunction, errors: list[FunctionInitError]) -> None:
        try:
            sandbox = Sandbox(function, self._functions[function.name], self._setup)
        except FunctionInitError as exc:
            errors.append(exc)
            return
        with self._lock:
            self._pools.setdefault(function.name, _Pool()).idle.append(sandbox)

    def invoke(self, function: DeployedFunction, event: Any) -> tuple[str, bool, str]:
        # Billed duration: from the moment a sandbox is free (its cold start included), not
        # the wait for one, which on Lambda would be another sandbox starting at once.
        started = time.perf_counter()
        try:
            sandbox, cold, started = self._acquire(function)
        except FunctionInitError as exc:
            body, errored, cold = exc.error, True, True
        else:
            try:
                body, errored = sandbox.invoke(event, function.timeout)
            finally:
                self._release(function.name, sandbox)
        duration = time.perf_counter() - started
        self.invocations.append(
            InvocationRecord(
                function.name,
                event,
                errored,
                str(body.get("errorType")) if errored else None,
                duration,
                function.memory,
                cold,
            )
        )
        payload = body if errored else body.get("result")
        return json.dumps(payload, default=str), errored, ""

    def _acquire(self, function: DeployedFunction) -> tuple[Sandbox, bool, float]:
        """A warm sandbox or a new one, once one of the function's slots is free; also
        says whether it started cold and when the slot was had (perf_counter)."""
        with self._lock:
            pool = self._pools.setdefault(function.name, _Pool())
            while True:
                while pool.idle:
                    sandbox = pool.idle.pop()
                    if sandbox.alive:
                        pool.running += 1
                        pool.busy.add(sandbox)
                        return sandbox, False, time.perf_counter()
                    sandbox.kill()
                if pool.running < self._max_sandboxes:
                    pool.running += 1
                    break
                self._lock.wait()
        slot_at = time.perf_counter()
        try:
            sandbox = Sandbox(function, self._functions[function.name], self._setup)
        except BaseException:
            with self._lock:
                pool.running -= 1
                self._lock.notify_all()
            raise
        with self._lock:
            pool.busy.add(sandbox)
            if self._closed:
                sandbox.stop()
        return sandbox, True, slot_at

    def _release(self, function_name: str, sandbox: Sandbox) -> None:
        with self._lock:
            pool = self._pools[function_name]
            pool.running -= 1
            pool.busy.discard(sandbox)
            if sandbox.alive and not self._closed:
                pool.idle.append(sandbox)
            else:
                sandbox.kill()
            self._lock.notify_all()

    def close(self) -> None:
        """Stop every sandbox (the local run is over)."""
        with self._lock:
            self._closed = True
            sandboxes = [sandbox for pool in self._pools.values() for sandbox in pool.idle]
            for pool in self._pools.values():
                pool.idle.clear()
                # A sandbox in the middle of an invocation is stopped too; the thread that
                # waits on it sees the process end and releases it.
                for sandbox in pool.busy:
                    sandbox.stop()
        for sandbox in sandboxes:
            sandbox.kill()

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
            if not errored or self._closed:
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
