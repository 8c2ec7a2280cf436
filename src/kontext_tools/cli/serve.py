"""`local --serve`: a local stack kept up until Ctrl-C, its HTTP intake open on 127.0.0.1
with an API key made for it, so that a person (curl) or another app can start edits the
way they would against a deployed stack (docs/openapi.yaml)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kontext_tools.api_keys import ApiKeyAdmin
from kontext_tools.cli.exits import EXIT_OK
from kontext_tools.cli.local import local_pipeline, local_run_setup, stood_up_or_refused
from kontext_tools.cli.output import say

if TYPE_CHECKING:
    from kontext_tools.local.pipeline import LocalPipeline


def run_serve(args: argparse.Namespace) -> int:
    _, overrides, fal_base_url, log_file = local_run_setup(args)
    say(args, "Standing up the pipeline on local AWS emulation, to serve its HTTP intake ...")
    serving, stop = threading.Event(), threading.Event()
    with (
        _stopped_by_signals(serving, stop),
        stood_up_or_refused(log_file),
        local_pipeline(args, overrides, fal_base_url, log_file) as pipeline,
    ):
        ready = _ready_document(pipeline, log_file)
        # Serving before it says so: a Ctrl-C sent on the ready line stops, never aborts.
        serving.set()
        _announce(args, ready)
        stop.wait()
        say(args, "Stopping the local stack ...")
        pipeline.settle()
    return EXIT_OK


def _ready_document(pipeline: LocalPipeline, log_file: Path) -> dict[str, str]:
    """Where the intake is, a key made for it, and where the rest is."""
    outputs = pipeline.outputs
    admin = ApiKeyAdmin(pipeline.clients.dynamodb, outputs["JobsTableName"])
    return {
        "intake_url": outputs["IntakeUrl"].rstrip("/"),
        "api_key": admin.create("local")[1],
        "bucket": outputs["ImagesBucketName"],
        "aws_endpoint_url": pipeline.endpoint_url,
        "log_file": str(log_file),
    }


def _announce(args: argparse.Namespace, ready: dict[str, str]) -> None:
    """One JSON line on stdout for scripts (--json), or how to call it, for people."""
    if args.json:
        print(json.dumps(ready), flush=True)
        return
    url, key = ready["intake_url"], ready["api_key"]
    say(
        args,
        f"The intake is up: {url}/v1/edits (API key: {key})\n\n"
        f"  curl -s {url}/v1/edits -H 'Authorization: Bearer {key}' \\\n"
        f"    -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"upload": true, "content_type": "image/jpeg", '
        f'"prompt": "Put a donut next to the flour."}}\'\n\n'
        f"Outputs land in s3://{ready['bucket']}/ on {ready['aws_endpoint_url']}; "
        f"logs in {ready['log_file']}. Ctrl-C stops it.",
    )


@contextmanager
def _stopped_by_signals(serving: threading.Event, stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM: before the intake is up, they stop the stand-up at once; once it
    serves, they set `stop`, and the stack is then taken down whole (a second Ctrl-C does
    not cut its teardown short)."""

    def on_signal(*_: object) -> None:
        if not serving.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
