"""The HTTP side: a route table from method and path to the answer that serves them.

Open routes (the JWKS, hosted files) need no key, as fal's do not; every other call must
present the key, and what it presents is recorded either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kontext_tools.emulator.access import EmulatedEndpoint, KeyCheck
from kontext_tools.emulator.answers import QueueAnswers
from kontext_tools.emulator.outputs import Outputs
from kontext_tools.emulator.replies import send_answer, send_file, send_json
from kontext_tools.emulator.status_stream import StatusStream
from kontext_tools.loopback import QuietHandler

INVALID_JSON = {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}]}


@dataclass(frozen=True)
class Call:
    handler: QuietHandler
    method: str
    path: str  # without the slashes around it
    query: str
    body: bytes

    @classmethod
    def read(cls, handler: QuietHandler, method: str) -> Call:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        return cls(handler, method, parts.path.strip("/"), parts.query, body)


Action = Callable[[Call, "re.Match[str]"], None]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    action: Action

    def match(self, call: Call) -> re.Match[str] | None:
        return self.pattern.fullmatch(call.path) if call.method == self.method else None


class Router:
    def __init__(
        self,
        endpoint: EmulatedEndpoint,
        keys: KeyCheck,
        answers: QueueAnswers,
        outputs: Outputs,
        jwks: Callable[[], dict[str, Any]],
    ) -> None:
        self._keys = keys
        self._answers = answers
        self._stream = StatusStream(answers)
        self._outputs = outputs
        self._jwks = jwks
        self._open = (
            Route("GET", re.compile(r"\.well-known/jwks\.json"), self._serve_jwks),
            Route("GET", re.compile(r"files/(?P<id>[^/]*)(?:/(?P<name>.*))?"), self._serve_file),
        )
        # Request URLs name the owner/app only, as fal's do (not the model's full path).
        request = re.escape(f"{endpoint.owner_app}/requests/") + "(?P<id>[^/]*)"
        self._keyed = (
            Route("POST", re.compile(re.escape(endpoint.path)), self._submit),
            Route("GET", re.compile(f"{request}/status"), self._status),
            Route("GET", re.compile(f"{request}/status/stream"), self._status_stream),
            Route("GET", re.compile(request), self._result),
            Route("PUT", re.compile(f"{request}/cancel"), self._cancel),
        )

    def route(self, handler: QuietHandler, method: str) -> None:
        call = Call.read(handler, method)
        found = _find(self._open, call)
        if found is None:
            if not self._keys.admits(handler.headers):
                return send_json(handler, 401, {"detail": "Invalid or missing API key"})
            found = _find(self._keyed, call)
        if found is None:
            return send_json(handler, 404, {"detail": f"Path /{call.path} not found"})
        action, match = found
        return action(call, match)

    def _serve_jwks(self, call: Call, match: re.Match[str]) -> None:
        send_json(call.handler, 200, self._jwks())

    def _serve_file(self, call: Call, match: re.Match[str]) -> None:
        redirected = "redirected=1" in call.query
        file = self._outputs.file(match["id"], match["name"] or "", redirected)
        send_file(call.handler, file)

    def _submit(self, call: Call, match: re.Match[str]) -> None:
        try:
            body = json.loads(call.body or b"{}")
        except json.JSONDecodeError:
            return send_json(call.handler, 422, INVALID_JSON)
        webhook = parse_qs(call.query).get("fal_webhook", [None])[0]
        answer = self._answers.submit(body if isinstance(body, dict) else {}, webhook)
        return send_answer(call.handler, answer)

    def _status(self, call: Call, match: re.Match[str]) -> None:
        answer = self._answers.status(match["id"], _with_logs(call.query))
        send_answer(call.handler, answer, request_id=match["id"])

    def _status_stream(self, call: Call, match: re.Match[str]) -> None:
        self._stream.serve(call.handler, match["id"], _with_logs(call.query))

    def _result(self, call: Call, match: re.Match[str]) -> None:
        send_answer(call.handler, self._answers.result(match["id"]), request_id=match["id"])

    def _cancel(self, call: Call, match: re.Match[str]) -> None:
        send_answer(call.handler, self._answers.cancel(match["id"]), request_id=match["id"])


def _with_logs(query: str) -> bool:
    """`logs=1` (fal's docs) or `logs=true` (fal's Python client) asks for the logs."""
    values = parse_qs(query).get("logs", [])
    return any(value.lower() in ("1", "true") for value in values)


def _find(routes: tuple[Route, ...], call: Call) -> tuple[Action, re.Match[str]] | None:
    for route in routes:
        match = route.match(call)
        if match is not None:
            return route.action, match
    return None


def handler_class(
    route: Callable[[QuietHandler, str], None],
) -> type[QuietHandler]:
    class EmulatorHandler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            route(self, "POST")

        def do_GET(self) -> None:
            route(self, "GET")

        def do_PUT(self) -> None:
            route(self, "PUT")

    return EmulatorHandler
