"""Standing a local run up: the emulated AWS (moto), the model queue (the emulator, or a
real one), the built template deployed, and each function warm in a sandbox of its own."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypedDict
from urllib.parse import urlsplit

from kontext_tools.local.account import REGION
from kontext_tools.local.build import BuildArtifacts, ensure_built, host_architecture
from kontext_tools.local.gateway import FunctionUrlGateway
from kontext_tools.local.lambdas import DEFAULT_MAX_SANDBOXES, LocalLambdas
from kontext_tools.local.moto_server import start_moto_server
from kontext_tools.local.sandbox import RuntimeSetup
from kontext_tools.local.stack import LocalOverrides, LocalStack, deploy_stack
from kontext_tools.session_clients import SessionClients

if TYPE_CHECKING:
    from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator

# The template's parameters, tuned for a machine-local run: the emulator's model takes
# about a second, so poll every second rather than every 2-30 s.
LOCAL_PARAMETERS = {
    "PollMinSeconds": "1",
    "PollMaxSeconds": "5",
    "ExpectedModelSeconds": "1",
    "DeadlineSeconds": "120",
    "LogLevel": "WARNING",
}
# Local-only environment: there is no CloudWatch here to read metrics, and callbacks and
# the intake's image URLs may reach servers on this machine (http://127.0.0.1): settings
# the deployable template cannot give, since on Lambda they would open the function's own
# loopback (the Runtime API).
LOCAL_ENVIRONMENT = {
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "CALLBACK_ALLOW_LOOPBACK": "true",
    "INTAKE_ALLOW_LOOPBACK": "true",
}


class LocalRunOptions(TypedDict, total=False):
    """How a local run is stood up; each option left out takes its default.

    `build`: the artifacts to run (default: this checkout's, rebuilt when stale).
    `fal_base_url`, `fal_key`: a real model queue and its key (default: the emulator).
    `emulator_timing`: how long the emulator's model queues and runs.
    `parameters`, `environment`: template parameters and function environment, over
    LOCAL_PARAMETERS and LOCAL_ENVIRONMENT.
    `log_file`: where the functions' output and the emulated AWS's logs go (default:
    nowhere). `max_sandboxes`: warm processes per function at most."""

    build: BuildArtifacts | None
    fal_base_url: str | None
    fal_key: str | None
    emulator_timing: EmulatorTiming | None
    parameters: Mapping[str, str] | None
    environment: Mapping[str, str] | None
    log_file: Path | None
    max_sandboxes: int


@dataclass(frozen=True)
class LocalRun:
    """What a local run that stands consists of."""

    endpoint_url: str
    clients: SessionClients
    stack: LocalStack
    lambdas: LocalLambdas
    emulator: FalQueueEmulator | None


@dataclass(frozen=True)
class _ModelQueue:
    """The model queue the stack is deployed against, and what the deploy needs for it."""

    parameters: dict[str, str]
    environment: dict[str, str]
    api_key: str | None
    emulator: FalQueueEmulator | None


def stand_up(options: LocalRunOptions, exit_stack: ExitStack) -> LocalRun:
    """The local run, standing; `exit_stack` takes it down again when it closes."""
    import boto3  # noqa: PLC0415 - after the environment is prepared

    artifacts = options.get("build") or ensure_built()
    exit_stack.callback(_restore_environment, dict(os.environ))
    log = _open_log(options.get("log_file"), exit_stack)
    endpoint, runner_credentials = start_moto_server(exit_stack, log)
    emulated = _reach_emulated_aws(endpoint, runner_credentials)
    session = boto3.Session(region_name=REGION)
    clients = SessionClients(session)
    model = _model_queue(options, exit_stack)
    gateway = FunctionUrlGateway(clients.lambda_).start()
    exit_stack.callback(gateway.stop)
    stack = deploy_stack(
        artifacts.template,
        clients=clients,
        stack_name=f"kontext-local-{uuid.uuid4().hex[:8]}",
        parameters=model.parameters,
        overrides=LocalOverrides(model.environment, gateway.url_for),
    )
    _log_definition_checks(stack, log)
    if model.api_key:
        clients.secretsmanager.put_secret_value(
            SecretId=stack.outputs["FalApiKeySecretArn"], SecretString=model.api_key
        )
    lambdas = LocalLambdas(
        stack,
        RuntimeSetup(artifacts.python, artifacts.runtime_sdk_dir, emulated, log),
        sqs=clients.sqs,
        max_sandboxes=options.get("max_sandboxes", DEFAULT_MAX_SANDBOXES),
    )
    exit_stack.enter_context(lambdas.patched())
    # One cold start per function now: a broken build fails here, naming the import.
    lambdas.warm_up()
    return LocalRun(endpoint, clients, stack, lambdas, model.emulator)


def _log_definition_checks(stack: LocalStack, log: IO[str] | None) -> None:
    if log is None:
        return
    for name, checks in stack.definition_checks.items():
        log.write(f"state machine {name}: definition passed {', '.join(checks)}\n")
    if any(len(checks) == 1 for checks in stack.definition_checks.values()):
        log.write(
            "AWS's ASL validators are not installed (make asl-tools): definitions were "
            "checked by the reachability walk only\n"
        )


def _reach_emulated_aws(endpoint: str, runner_credentials: dict[str, str]) -> dict[str, str]:
    """Every client of this process reaches the emulated AWS as the runner (the functions'
    processes as their roles: sandbox.py); the state machine's interpreter finds it
    through MOTO_PORT. Returns the environment the functions' processes get for it."""
    os.environ.pop("AWS_SESSION_TOKEN", None)  # the runner's key is a user's, not a session's
    emulated = {
        **runner_credentials,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }
    os.environ.update(emulated)
    os.environ["MOTO_PORT"] = endpoint.rsplit(":", 1)[1]
    return emulated


def _model_queue(options: LocalRunOptions, exit_stack: ExitStack) -> _ModelQueue:
    parameters = {
        "Architecture": host_architecture(),
        **LOCAL_PARAMETERS,
        **(options.get("parameters") or {}),
    }
    environment = {**LOCAL_ENVIRONMENT, **(options.get("environment") or {})}
    external = options.get("fal_base_url")
    if external:
        parameters["FalBaseUrl"] = external
        # The real model cannot reach a bucket on this machine: send the bytes.
        parameters["InputTransfer"] = "data_uri"
        return _ModelQueue(parameters, environment, options.get("fal_key"), None)
    api_key = options.get("fal_key") or f"local-{secrets.token_hex(8)}"
    emulator = _start_emulator(options.get("emulator_timing"), api_key, exit_stack)
    parameters["FalBaseUrl"] = emulator.base_url
    parameters.setdefault("OutputUrlHosts", str(urlsplit(emulator.base_url).hostname))
    parameters["WebhookJwksUrl"] = emulator.jwks_url
    environment["ALLOW_HTTP_OUTPUT_URLS"] = "true"
    return _ModelQueue(parameters, environment, api_key, emulator)


def _start_emulator(
    timing: EmulatorTiming | None, api_key: str, exit_stack: ExitStack
) -> FalQueueEmulator:
    from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator  # noqa: PLC0415

    emulator = FalQueueEmulator(
        timing=timing or EmulatorTiming(queue_seconds=0.3, run_seconds=1.0), api_key=api_key
    )
    emulator.start()
    exit_stack.callback(emulator.stop)
    return emulator


def _open_log(log_file: Path | None, exit_stack: ExitStack) -> IO[str] | None:
    if log_file is None:
        return None
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return exit_stack.enter_context(log_file.open("a", encoding="utf-8"))


def _restore_environment(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)
