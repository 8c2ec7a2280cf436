"""The emulated AWS of a local run: a moto server on 127.0.0.1 running real ASL, with
moto's corrections on, identity policies enforced (iam_enforcement.py), its logs in the
run's log file, and the process's emulated state reset when the last run in the process
stops."""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from typing import IO

from kontext_tools.local.iam_enforcement import identity_policies_enforced
from kontext_tools.local.moto_fixes import moto_as_aws

_ACTIVE_RUNS = [0]
_ACTIVE_RUNS_LOCK = threading.Lock()


def start_moto_server(exit_stack: ExitStack, log: IO[str] | None) -> tuple[str, dict[str, str]]:
    """A moto server on 127.0.0.1 running real ASL and enforcing identity policies;
    returns its endpoint and the runner's credentials (an administrator's). Everything it
    started is undone when `exit_stack` closes."""
    import httpx  # noqa: PLC0415
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - local run only

    _route_moto_logs(log)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Its serve loop notices a shutdown only every half second: stop it without waiting
    # (nothing is served after the reset below, and the port is freed a moment later).
    exit_stack.callback(
        threading.Thread(target=server.stop, name="moto-server-stop", daemon=True).start
    )
    # Emulated state lives in this process's moto backends, shared by every local run
    # in the process: the last one to stop leaves none to the next.
    with _ACTIVE_RUNS_LOCK:
        _ACTIVE_RUNS[0] += 1
    exit_stack.callback(_reset_when_last, endpoint)
    httpx.post(
        f"{endpoint}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
    exit_stack.enter_context(moto_as_aws())
    return endpoint, exit_stack.enter_context(identity_policies_enforced())


def _reset_when_last(endpoint: str) -> None:
    import httpx  # noqa: PLC0415

    with _ACTIVE_RUNS_LOCK:
        _ACTIVE_RUNS[0] -= 1
        if _ACTIVE_RUNS[0] == 0:
            httpx.post(f"{endpoint}/moto-api/reset", timeout=10)


def _route_moto_logs(log: IO[str] | None) -> None:
    """moto and its web server log every request: to the run's log file, not the terminal."""
    for name in ("werkzeug", "moto"):
        logger = logging.getLogger(name)
        logger.handlers = [logging.StreamHandler(log)] if log is not None else []
        logger.propagate = False
        logger.setLevel(logging.INFO if log is not None else logging.CRITICAL)
