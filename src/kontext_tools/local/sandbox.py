"""One warm execution environment of one function: a process running the Lambda runtime
of `lambda_runtime.py` under the runtime's Python, with only the function's built folder,
its built layers and the runtime's boto3 on its import path, and the function's
environment from the template.

It answers the way Lambda does: the JSON result, or `{"errorMessage", "errorType",
"stackTrace"}` with the error flag, "Sandbox.Timedout" past the function's timeout, and
"Runtime.ImportModuleError" when the handler cannot be imported.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kontext_tools.local.build import RUNTIME_FLAGS
from kontext_tools.local.iam_enforcement import RoleNotAssumableError, function_credentials
from kontext_tools.local.stack import FunctionSource

RUNTIME_SCRIPT = Path(__file__).with_name("lambda_runtime.py")
# Lambda gives an init phase up to 10 s before it counts against the invocation.
INIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DeployedFunction:
    """What moto knows of the function being invoked."""

    name: str
    arn: str
    role: str
    environment: dict[str, str]
    timeout: float
    memory: int

    @classmethod
    def of(cls, moto_function: Any) -> DeployedFunction:
        """From moto's own record of the function."""
        return cls(
            name=moto_function.function_name,
            arn=moto_function.function_arn,
            role=moto_function.role,
            environment={k: str(v) for k, v in dict(moto_function.environment_vars).items()},
            timeout=float(moto_function.timeout),
            memory=int(moto_function.memory_size),
        )


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
        try:
            environment = {**_lambda_environment(function, source, setup), **function.environment}
        except RoleNotAssumableError as exc:
            # Lambda refuses such a function at CreateFunction, with these words.
            raise FunctionInitError(
                function.name,
                {"errorMessage": str(exc), "errorType": "InvalidParameterValueException"},
            ) from exc
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        self._process = _start_runtime(
            source,
            setup,
            environment=environment,
            pipes=(request_read, response_write),
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


def _start_runtime(
    source: FunctionSource,
    setup: RuntimeSetup,
    *,
    environment: dict[str, str],
    pipes: tuple[int, int],
) -> subprocess.Popen[bytes]:
    """The runtime's process, reading requests from and writing answers to `pipes`."""
    request_read, response_write = pipes
    sink = setup.log if setup.log is not None else subprocess.DEVNULL
    return subprocess.Popen(  # noqa: S603 - our own runtime script
        [
            str(setup.python),
            *RUNTIME_FLAGS,
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
        # The function calls AWS as its role, as on Lambda, not as the runner.
        **function_credentials(function.role, function.name),
    }
