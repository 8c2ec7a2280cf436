"""A WSGI application served on 127.0.0.1 from a daemon thread while it runs, on werkzeug's
threaded server: the model-queue emulator and the local function URLs."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

HOST = "127.0.0.1"


class StartStop:
    """Something that runs in the background between start() and stop(); `with` does both."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LoopbackServer(StartStop):
    """A server bound to 127.0.0.1, served from a thread between start() and stop()."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"loopback-{server.port}",
        )
        self._started = False

    @classmethod
    def for_wsgi(cls, app: WSGIApplication, port: int = 0) -> Self:
        """`port` 0: a free one, chosen now (base_url is known before start). Nothing is
        logged per request: the run has logs of its own."""
        return cls(make_server(HOST, port, app, threaded=True, request_handler=_QuietWsgi))

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Self:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for the serve loop to notice: never started, it would wait forever.
        if self._started:
            self._server.shutdown()
        self._server.server_close()
        if self._started:
            self._thread.join(timeout=5)


class _QuietWsgi(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        return
