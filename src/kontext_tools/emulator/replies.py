"""Writing answers to the wire: the queue's (JSON, with `x-fal-request-id` as fal's own
answers carry it) and the hosted files' (whole, cut short, or streamed)."""

from __future__ import annotations

import json
from typing import Any

from kontext_tools.emulator.answers import Answer
from kontext_tools.emulator.outputs import HostedFile
from kontext_tools.loopback import QuietHandler


def send_answer(handler: QuietHandler, answer: Answer, *, request_id: str | None = None) -> None:
    """A queue answer: a JSON document (optionally with headers), or the ingress's page.

    fal's own answers about a request carry `x-fal-request-id`; the ingress's do not.
    """
    if answer.raw is not None:
        return send_bytes(handler, answer.code, answer.content_type, answer.raw)
    headers = answer.headers
    document = answer.document
    named = document.get("request_id") if isinstance(document, dict) else None
    if (request_id or named) and "x-fal-request-id" not in headers:
        headers = {**headers, "x-fal-request-id": str(request_id or named)}
    data = json.dumps(document).encode()
    return send_bytes(handler, answer.code, "application/json", data, headers)


def send_json(handler: QuietHandler, code: int, document: Any) -> None:
    send_bytes(handler, code, "application/json", json.dumps(document).encode())


def send_bytes(
    handler: QuietHandler,
    code: int,
    content_type: str,
    data: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.reply(code, data, {"Content-Type": content_type, **(headers or {})})


def send_file(handler: QuietHandler, file: HostedFile) -> None:
    body = file.body
    if isinstance(body, bytes) and file.location:
        return send_bytes(handler, file.code, file.content_type, body, {"Location": file.location})
    if isinstance(body, bytes) and file.declared in (None, len(body)):
        return send_bytes(handler, file.code, file.content_type, body)
    return _stream(handler, file)


def _stream(handler: QuietHandler, file: HostedFile) -> None:
    """A body sent in pieces, or shorter than declared: the connection closes after it."""
    handler.send_response(file.code)
    handler.send_header("Content-Type", file.content_type)
    handler.send_header("Content-Length", str(file.declared))
    handler.send_header("Connection", "close")
    handler.end_headers()
    try:
        for chunk in [file.body] if isinstance(file.body, bytes) else file.body:
            handler.wfile.write(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    handler.close_connection = True
