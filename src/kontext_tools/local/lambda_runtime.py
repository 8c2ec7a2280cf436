"""A Lambda execution environment for one function, as a process of its own.

Started by the local run (`sandbox.py`) as

    python3.12 -I -S -B lambda_runtime.py REQUEST_FD RESPONSE_FD

with the function's environment and nothing else. `-I -S` keep every site-packages folder,
the development virtualenv's included, off the import path; `-B` writes no bytecode, as
Lambda's read-only code folders keep none; this script then puts on it
what Lambda puts there: the function's own folder (LAMBDA_TASK_ROOT), each layer's
`python/` folder (as mounted at /opt), and the runtime's boto3. It imports the handler
once (the init phase) and then answers invocations one at a time, for as long as the
local run keeps it warm.

Only the standard library is used here: this script is the runtime, not the function.
Protocol, one JSON document per line:
  runtime -> local run: {"init": "ok"} | {"init_error": {errorMessage, errorType}}
  local run -> runtime: {"event": ..., "request_id": ..., "deadline_ms": ..., "arn": ...}
  runtime -> local run: {"result": ...} | {"error": {errorMessage, errorType, stackTrace}}
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = request["arn"]
        self.aws_request_id = request["request_id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[-6:],
    }


def _import_path() -> list[str]:
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    layers = [item for item in os.environ.get("KONTEXT_LAYER_DIRS", "").split(os.pathsep) if item]
    mounted: list[str] = []
    for layer in layers:
        # Lambda's two layer folders for Python (lib/pythonX.Y/site-packages, then python/).
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        mounted += [os.path.join(layer, "python", "lib", version, "site-packages")]
        mounted += [os.path.join(layer, "python")]
    runtime_sdk = os.environ.get("KONTEXT_RUNTIME_SDK_DIR", "")
    return [task_root, *mounted, *([runtime_sdk] if runtime_sdk else [])]


def _load_handler() -> Any:
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # Lambda's own words for a handler that cannot be imported.
        raise _InitError(
            f"Unable to import module '{module_name}': {exc}", "Runtime.ImportModuleError"
        ) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError(
            f"Handler '{function_name}' missing on module '{module_name}'",
            "Runtime.HandlerNotFound",
        )
    return handler


class _InitError(Exception):
    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def main() -> int:
    requests = os.fdopen(int(sys.argv[1]), "r", encoding="utf-8")
    responses = os.fdopen(int(sys.argv[2]), "w", encoding="utf-8")
    sys.path[:0] = _import_path()

    def send(message: dict[str, Any]) -> None:
        responses.write(json.dumps(message, default=str) + "\n")
        responses.flush()

    try:
        handler = _load_handler()
    except _InitError as exc:
        send({"init_error": _error(exc, exc.error_type)})
        return 1
    except Exception as exc:  # an error raised while the module initialises
        send({"init_error": _error(exc, f"Runtime.Unknown ({type(exc).__name__})")})
        return 1
    send({"init": "ok"})
    for line in requests:
        request = json.loads(line)
        try:
            result = handler(request["event"], LambdaContext(request))
        except Exception as exc:  # every failure goes back to the caller, as Lambda does
            send({"error": _error(exc)})
        else:
            try:
                payload = json.dumps(result)
            except (TypeError, ValueError) as exc:
                send({"error": _error(exc, "Runtime.MarshalError")})
            else:
                responses.write('{"result": ' + payload + "}\n")
                responses.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
