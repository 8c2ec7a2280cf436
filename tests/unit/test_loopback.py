"""The loopback server: a WSGI application served on 127.0.0.1 from a thread of its own."""

from __future__ import annotations

import time

import httpx
import pytest
from werkzeug import Request, Response

from kontext_tools.loopback import LoopbackServer

bodies: list[bytes] = []


@Request.application  # type: ignore[arg-type]
def _echo(request: Request) -> Response:
    bodies.append(request.get_data())
    return Response(status=200)


def test_a_loopback_server_serves_while_it_runs_and_frees_its_port() -> None:
    # Given an application served on 127.0.0.1
    bodies.clear()
    server = LoopbackServer.for_wsgi(_echo)
    # When it is posted to while it runs, then stopped
    with server:
        answer = httpx.post(f"{server.base_url}/hook", content=b"{}", timeout=5)
    # Then it answered, and after stop nothing listens there
    assert answer.status_code == 200
    assert bodies == [b"{}"]
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{server.base_url}/hook", content=b"{}", timeout=2)


def test_its_address_is_known_before_it_starts() -> None:
    # Given a server made on a free port, not started
    server = LoopbackServer.for_wsgi(_echo)
    # When its address is read / Then it names 127.0.0.1 and the port it holds
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.port > 0
    server.stop()


def test_a_loopback_server_never_started_stops_at_once() -> None:
    # Given a server that was made but never started
    server = LoopbackServer.for_wsgi(_echo)
    started = time.monotonic()
    # When it is stopped / Then it does not wait for a serve loop that never ran
    server.stop()
    assert time.monotonic() - started < 1.0
