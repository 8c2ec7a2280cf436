"""An HTTP server on 127.0.0.1 that serves from a daemon thread while it runs: the model-queue
emulator's (a WSGI application on werkzeug's server), the local function URLs', and the
tests' receivers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

from werkzeug.serving import WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

HOST = "127.0.0.1"


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the run has logs of its own); `reply` sends one
    whole answer. The emulator's, the function URLs' and the tests' handlers build on it."""

    def reply(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """The status, the headers (Content-Length from the body unless given) and the body."""
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


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

    def __init__(self, server: HTTPServer) -> None:
        """A server of the caller's own (a TLS socket, a subclass that counts connections)."""
        self._server = server
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"loopback-{server.RequestHandlerClass.__name__}",
        )
        self._started = False

    @classmethod
    def for_handler(cls, handler: type[BaseHTTPRequestHandler], port: int = 0) -> Self:
        """`port` 0: a free one, chosen now (base_url is known before start)."""
        return cls(ThreadingHTTPServer((HOST, port), handler))

    @classmethod
    def for_wsgi(cls, app: WSGIApplication, port: int = 0) -> Self:
        """A WSGI application on werkzeug's threaded server, which logs nothing here."""
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
