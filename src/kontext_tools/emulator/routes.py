"""The HTTP side: a route table (werkzeug's URL map) from method and path to the answer
that serves them, as a WSGI application.

Open routes (the JWKS, hosted files) need no key, as fal's do not; every other call must
present the key, and what it presents is recorded either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from kontext_tools.emulator.access import EmulatedEndpoint, KeyCheck
from kontext_tools.emulator.answers import Answer, QueueAnswers
from kontext_tools.emulator.outputs import Outputs
from kontext_tools.emulator.replies import answer_response, file_response, json_response
from kontext_tools.emulator.status_stream import StatusStream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

INVALID_JSON = {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}]}
# Served without a key, as fal's are.
OPEN = frozenset({"jwks", "file"})


def route_table(endpoint: EmulatedEndpoint) -> Map:
    # Request URLs name the owner/app only, as fal's do (not the model's full path).
    request = f"/{endpoint.owner_app}/requests/<id>"
    return Map(
        [
            Rule("/.well-known/jwks.json", endpoint="jwks", methods=["GET"]),
            Rule("/files/<id>", endpoint="file", methods=["GET"], defaults={"name": ""}),
            Rule("/files/<id>/<path:name>", endpoint="file", methods=["GET"]),
            Rule(f"/{endpoint.path}", endpoint="submit", methods=["POST"]),
            Rule(f"{request}/status", endpoint="status", methods=["GET"]),
            Rule(f"{request}/status/stream", endpoint="status_stream", methods=["GET"]),
            Rule(request, endpoint="result", methods=["GET"]),
            Rule(f"{request}/cancel", endpoint="cancel", methods=["PUT"]),
        ],
        strict_slashes=False,
    )


class Router:
    def __init__(
        self,
        endpoint: EmulatedEndpoint,
        keys: KeyCheck,
        answers: QueueAnswers,
        outputs: Outputs,
        jwks: Callable[[], dict[str, Any]],
    ) -> None:
        self._map = route_table(endpoint)
        self._keys = keys
        self._answers = answers
        self._stream = StatusStream(answers)
        self._outputs = outputs
        self._jwks = jwks
        self._actions: dict[str, Callable[[Request, dict[str, str]], Response]] = {
            "jwks": lambda request, _: json_response(200, self._jwks()),
            "file": self._serve_file,
            "submit": self._submit,
            "status": self._status,
            "status_stream": self._status_stream,
            "result": lambda _, args: self._answer(self._answers.result(args["id"]), args),
            "cancel": lambda _, args: self._answer(self._answers.cancel(args["id"]), args),
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        try:
            name, args = self._map.bind_to_environ(request.environ).match()
        except HTTPException:
            # An unknown path needs the key as much as a known one, and then is not found.
            name, args = "", {}
        if name not in OPEN and not self._keys.admits(request.headers):
            return json_response(401, {"detail": "Invalid or missing API key"})
        if not name:
            return json_response(404, {"detail": f"Path {request.path} not found"})
        return self._actions[str(name)](request, {key: str(value) for key, value in args.items()})

    def _serve_file(self, request: Request, args: dict[str, str]) -> Response:
        redirected = request.args.get("redirected") == "1"
        return file_response(self._outputs.file(args["id"], args["name"], redirected))

    def _submit(self, request: Request, args: dict[str, str]) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}")
        except json.JSONDecodeError:
            return json_response(422, INVALID_JSON)
        webhook = request.args.get("fal_webhook")
        answer = self._answers.submit(body if isinstance(body, dict) else {}, webhook)
        return answer_response(answer)

    def _status(self, request: Request, args: dict[str, str]) -> Response:
        return self._answer(self._answers.status(args["id"], _with_logs(request)), args)

    def _status_stream(self, request: Request, args: dict[str, str]) -> Response:
        return self._stream.response(args["id"], _with_logs(request))

    def _answer(self, answer: Answer, args: dict[str, str]) -> Response:
        return answer_response(answer, request_id=args["id"])


def _with_logs(request: Request) -> bool:
    """`logs=1` (fal's docs) or `logs=true` (fal's Python client) asks for the logs."""
    return any(value.lower() in ("1", "true") for value in request.args.getlist("logs"))
