"""Answers as fal's queue and file host send them: the queue's JSON (with
`x-fal-request-id` as fal's own answers carry it) and the hosted files (whole, cut short,
or streamed)."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

from kontext_tools.emulator.answers import Answer
from kontext_tools.emulator.outputs import HostedFile


def answer_response(answer: Answer, *, request_id: str | None = None) -> Response:
    """A queue answer: a JSON document (optionally with headers), or the ingress's page.

    fal's own answers about a request carry `x-fal-request-id`; the ingress's do not.
    """
    if answer.raw is not None:
        return Response(answer.raw, answer.code, content_type=answer.content_type)
    headers = answer.headers
    document = answer.document
    named = document.get("request_id") if isinstance(document, dict) else None
    if (request_id or named) and "x-fal-request-id" not in headers:
        headers = {**headers, "x-fal-request-id": str(request_id or named)}
    return json_response(answer.code, document, headers)


def json_response(code: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(document), code, headers, content_type="application/json")


def file_response(file: HostedFile) -> Response:
    """A hosted file; one sent in pieces, or shorter than it declares, ends with the
    connection (the server closes every connection after its answer)."""
    headers = {"Location": file.location} if file.location else {}
    if isinstance(file.body, bytes) and file.declared in (None, len(file.body)):
        return Response(file.body, file.code, headers, content_type=file.content_type)
    chunks = [file.body] if isinstance(file.body, bytes) else file.body
    headers["Content-Length"] = str(file.declared)
    return Response(
        chunks, file.code, headers, content_type=file.content_type, direct_passthrough=True
    )
