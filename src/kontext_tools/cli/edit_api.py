"""`edit IMAGE --api URL`: one edit through a stack's HTTP intake instead of S3, as an app
without AWS credentials makes it (an upload form, then the edit followed to its end)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from kontext_tools.cli.arguments import EditRequest, checked_edit_request, checked_image
from kontext_tools.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from kontext_tools.cli.output import emit
from kontext_tools.intake_client import IntakeClient, IntakeRefusedError

CALLBACK_METADATA = "callback-url"


def run_edit_api(args: argparse.Namespace) -> int:
    image = checked_image(args.image)
    request = checked_edit_request(args)
    api_key = args.api_key or os.environ.get("KONTEXT_API_KEY")
    if not api_key:
        raise CliError("--api needs a key: --api-key kp_... or KONTEXT_API_KEY")
    try:
        return _edit_and_follow(args, IntakeClient.connect(args.api, api_key), image, request)
    except IntakeRefusedError as exc:
        raise CliError(f"the intake refused: {exc}") from None
    except TimeoutError as exc:
        raise CliError(f"gave up waiting: {exc}", EXIT_TIMEOUT) from None
    except httpx.HTTPError as exc:
        raise CliError(f"the intake at {args.api} could not be reached: {exc}") from None


def _edit_and_follow(
    args: argparse.Namespace, client: IntakeClient, image: Path, request: EditRequest
) -> int:
    edit = client.upload_edit(image, request.prompt, _request_fields(request))
    print(f"edit {edit['id']}: uploaded {edit['object']['key']}", file=sys.stderr)
    if args.no_wait:
        emit(args, edit, edit["id"])
        return EXIT_OK
    status = client.wait(edit, timeout=args.timeout, on_status=_show)
    files = client.download_outputs(status, request.out_dir) if request.out_dir else []
    document = status | {"files": [str(path) for path in files]}
    text = f"{status['status']}: " + (", ".join(map(str, files)) or status.get("reason") or "")
    emit(args, document, text)
    return EXIT_OK if status["status"] == "succeeded" else EXIT_FAILED


def _request_fields(request: EditRequest) -> dict[str, Any]:
    """The options, the callback and the rest of --metadata, as the API's fields."""
    metadata = dict(request.metadata)
    fields: dict[str, Any] = dict(request.options)
    if CALLBACK_METADATA in metadata:
        fields["callback_url"] = metadata.pop(CALLBACK_METADATA)
    if metadata:
        fields["metadata"] = metadata
    return fields


def _show(status: str, elapsed: float) -> None:
    print(f"  {elapsed:6.1f} s  {status}", file=sys.stderr, flush=True)
