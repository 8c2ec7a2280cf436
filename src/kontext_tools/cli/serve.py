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

from kontext_tools.api_keys import ApiKeyAdmin
from kontext_tools.cli.exits import EXIT_OK
from kontext_tools.cli.local import local_pipeline, local_run_setup, stood_up_or_refused
from kontext_tools.cli.output import say


def run_serve(args: argparse.Namespace) -> int:
    _, overrides, fal_base_url, log_file = local_run_setup(args)
    say(args, "Standing up the pipeline on local AWS emulation, to serve its HTTP intake ...")
    stop = threading.Event()
    with (
        stood_up_or_refused(log_file),
        local_pipeline(args, overrides, fal_base_url, log_file) as pipeline,
    ):
        outputs = pipeline.outputs
        _, api_key = ApiKeyAdmin(pipeline.clients.dynamodb, outputs["JobsTableName"]).create(
            "local"
        )
        ready = {
            "intake_url": outputs["IntakeUrl"].rstrip("/"),
            "api_key": api_key,
            "bucket": outputs["ImagesBucketName"],
            "aws_endpoint_url": pipeline.endpoint_url,
            "log_file": str(log_file),
        }
        _announce(args, ready)
        with _stopped_by_signals(stop):
            stop.wait()
        say(args, "Stopping the local stack ...")
        pipeline.settle()
    return EXIT_OK


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
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` instead of raising in the middle of serving."""
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
