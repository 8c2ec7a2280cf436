"""Run the built Lambda functions, each in processes of its own, when moto invokes them.

moto's invocations reach this module through lambda_routing.py; each is handed to a
sandbox (sandbox.py) in the local run's process (where the moto server runs). As on
Lambda, a sandbox is cold-started once, kept warm between invocations, runs one
invocation at a time (more at once start more sandboxes, up to a bound), and is thrown
away when it times out or crashes. Asynchronous invocations are queued, retried and
handed to the on-failure destination as Lambda does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kontext_tools.local.account import ACCOUNT_ID, REGION
from kontext_tools.local.lambda_routing import moto_invocations_routed_to
from kontext_tools.local.sandbox import DeployedFunction, FunctionInitError, RuntimeSetup, Sandbox

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

    from kontext_tools.local.stack import LocalStack

# The hop from S3's event to the function's start, as Lambda's async queue adds one.
ASYNC_INVOKE_DELAY_SECONDS = 0.1
# Sandboxes per function at once: Lambda's would be up to the account's concurrency; a
# machine of two cores gains nothing from more processes than this.
DEFAULT_MAX_SANDBOXES = 4


@dataclass
class InvocationRecord:
    function_name: str
    event: Any
    errored: bool
    error_type: str | None
    duration_seconds: float
    memory_mb: int
    cold_start: bool = False


@dataclass
class _Pool:
    idle: list[Sandbox] = field(default_factory=list)
    busy: set[Sandbox] = field(default_factory=set)
    running: int = 0  # busy, and being started


class LocalLambdas:
    """The stack's functions, their sandboxes, and the patch that routes moto's invocations."""

    def __init__(
        self,
        stack: LocalStack,
        setup: RuntimeSetup,
        *,
        sqs: SQSClient | None = None,
        max_sandboxes: int = DEFAULT_MAX_SANDBOXES,
    ) -> None:
        """`sqs` delivers to on-failure destinations (None: failed events are dropped)."""
        self._stack = stack
        self._setup = setup
        self._sqs = sqs
        self._max_sandboxes = max_sandboxes
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Condition()
        self._async_workers: list[threading.Thread] = []
        self._closed = False
        self.invocations: list[InvocationRecord] = []

    def runs(self, function_name: str) -> bool:
        """Whether the function is one of the stack's (moto runs any other itself)."""
        return function_name in self._stack.functions

    @contextmanager
    def patched(self) -> Iterator[None]:
        """While active, moto's invocations of the stack's functions run here; every
        sandbox is stopped when it ends."""
        try:
            with moto_invocations_routed_to(self):
                yield
        finally:
            self.close()

    def warm_up(self) -> None:
        """Cold-start one sandbox per function now, so a broken build fails at once.

        Raises FunctionInitError naming the function and the import error.
        """
        from moto.awslambda.models import lambda_backends  # noqa: PLC0415 - local run only

        backend = lambda_backends[ACCOUNT_ID][REGION]
        functions = [
            DeployedFunction.of(backend.get_function(name)) for name in self._stack.functions
        ]
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
            sandbox = Sandbox(function, self._stack.functions[function.name], self._setup)
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
            warm = self._take_warm_or_slot(pool)
            if warm is not None:
                return warm, False, time.perf_counter()
        slot_at = time.perf_counter()
        try:
            sandbox = Sandbox(function, self._stack.functions[function.name], self._setup)
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

    def _take_warm_or_slot(self, pool: _Pool) -> Sandbox | None:
        """Under the lock: a warm sandbox, taken; else None once a slot for a new one is
        taken (waiting for one to free up)."""
        while True:
            while pool.idle:
                sandbox = pool.idle.pop()
                if sandbox.alive:
                    pool.running += 1
                    pool.busy.add(sandbox)
                    return sandbox
                sandbox.kill()
            if pool.running < self._max_sandboxes:
                pool.running += 1
                return None
            self._lock.wait()

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

    def drain(self, timeout: float = 60.0) -> list[str]:
        """Wait for the asynchronous invocations started so far (with their retries) to
        finish; returns the functions of those still running after `timeout` seconds."""
        with self._lock:
            workers = list(self._async_workers)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return [worker.name.removeprefix("async-") for worker in workers if worker.is_alive()]

    def _run_async(self, function: DeployedFunction, event: Any) -> None:
        time.sleep(ASYNC_INVOKE_DELAY_SECONDS)
        config = self._stack.async_configs.get(function.name, {})
        attempts = 1 + int(config.get("MaximumRetryAttempts", 2))
        for _ in range(attempts):
            if self._closed:  # the local run stopped while the event waited
                return
            try:
                payload, errored, _logs = self.invoke(function, event)
            except Exception:
                if self._closed:  # the stack (its roles, its sandboxes) went away meanwhile
                    return
                raise
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
