"""`jobs`, `redrive`, `callback-secret`, `put-key` and `teardown`: the deployed stack as a
whole, rather than one job in it."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from kontext_tools.cli.arguments import parse_since
from kontext_tools.cli.aws import Aws, deployed_stack, required_output, stack_name
from kontext_tools.cli.exits import EXIT_OK
from kontext_tools.cli.output import emit
from kontext_tools.deployed import (
    list_jobs,
    put_api_key,
    redrive_dead_letters,
    teardown_stack,
    trigger_function_of,
)

if TYPE_CHECKING:
    from datetime import datetime

    from kontext_tools.deployed import JobSummary, StackOutputs


def run_jobs(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    jobs = list_jobs(
        aws.stepfunctions,
        stack.state_machine_arn,
        status=args.status,
        since=since,
        limit=args.limit,
    )
    document = {"stack": stack.name, "jobs": [job.document() for job in jobs]}
    emit(args, document, "\n".join(_jobs_table(jobs) if jobs else [_no_jobs(stack, since)]))
    return EXIT_OK


def _jobs_table(jobs: list[JobSummary]) -> list[str]:
    lines = [
        f"{'started (UTC)':19}  {'status':9}  {'seconds':>7}  {'cost $':>7}  "
        f"{'reason':24}  {'request id':36}  key"
    ]
    for job in jobs:
        seconds = "" if job.seconds is None else f"{job.seconds:.1f}"
        lines.append(
            f"{job.started_at:%Y-%m-%d %H:%M:%S}  {job.status:9}  {seconds:>7}  "
            f"{job.cost_usd:7.4f}  {job.reason or '':24}  {job.request_id or '':36}  {job.key}"
        )
    return lines


def _no_jobs(stack: StackOutputs, since: datetime | None) -> str:
    return f"no jobs in stack {stack.name}" + (f" since {since:%Y-%m-%d %H:%M}" if since else "")


def run_redrive(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    queue_url = required_output(stack, "TriggerDeadLetterQueueUrl")
    function = trigger_function_of(aws.s3, stack.bucket)
    outcome = redrive_dead_letters(aws.sqs, aws.lambda_, queue_url, function)
    text = (
        f"replayed {outcome.replayed} failed upload events to {function.rsplit(':', 1)[-1]}"
        if outcome.replayed
        else "the trigger's dead-letter queue is empty: nothing to replay"
    )
    if outcome.unreadable:
        text += f"; left {outcome.unreadable} messages that are not failed S3 events in the queue"
    emit(
        args,
        {
            "replayed": outcome.replayed,
            "unreadable": outcome.unreadable,
            "function": outcome.function,
        },
        text,
    )
    return EXIT_OK


def run_callback_secret(args: argparse.Namespace) -> int:
    from kontext_pipeline.notifications.callbacks import displayed_secret  # noqa: PLC0415

    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    secret_arn = required_output(stack, "CallbackSigningSecretArn")
    value = aws.secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"]
    # Printed here only, for the receivers' configuration; nothing else logs it.
    emit(args, {"secret": displayed_secret(value)}, displayed_secret(value))
    return EXIT_OK


def run_put_key(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    api_key = os.environ.get("FAL_KEY") or getpass.getpass("Model API key (not echoed): ")
    put_api_key(aws.secretsmanager, stack, api_key)
    print(f"stored the key in {stack.outputs['FalApiKeySecretArn']}", file=sys.stderr)
    return EXIT_OK


def run_teardown(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    # Not through deployed_stack: a stack whose first deploy rolled back has no outputs to find.
    done = teardown_stack(
        aws.cloudformation, aws.s3, stack_name(args), keep_bucket=args.keep_bucket
    )
    print(done.summary(), file=sys.stderr)
    return EXIT_OK
