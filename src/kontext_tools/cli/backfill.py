"""`backfill`: edit the images already under a prefix of a deployed stack, each once
(its BackfillStateMachine), or with --dry-run count them and the model's cost."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from kontext_tools.cli.arguments import checked_prompt, chosen_options
from kontext_tools.cli.aws import Aws, deployed_stack, required_output
from kontext_tools.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from kontext_tools.cli.output import emit

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from kontext_tools.deployed import StackOutputs


def run_backfill(args: argparse.Namespace) -> int:
    options = chosen_options(args)
    prompt = checked_prompt(args.prompt) if args.prompt is not None else None
    if args.max_concurrency is not None and not 1 <= args.max_concurrency <= 9999:
        raise CliError("--max-concurrency takes 1 to 9999")
    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    if not args.prefix.startswith(stack.input_prefix):
        raise CliError(
            f"--prefix {args.prefix!r} is outside the input prefix {stack.input_prefix!r}: "
            "the backfill would skip every object"
        )
    if args.dry_run:
        return _dry_run(args, aws.s3, stack, prompt, options)
    return _backfill(args, aws, stack, prompt, options)


def _dry_run(
    args: argparse.Namespace,
    s3: S3Client,
    stack: StackOutputs,
    prompt: str | None,
    options: dict[str, Any],
) -> int:
    from kontext_pipeline.core.models import EditOverrides  # noqa: PLC0415 - only this command needs it
    from kontext_pipeline.storage.scope import EditScope  # noqa: PLC0415

    from kontext_tools.backfill import dry_run  # noqa: PLC0415

    scope = EditScope(stack.input_prefix, stack.outputs.get("OutputPrefix", "outputs/"))
    request = EditOverrides(prompt=prompt, options=dict(options or {}))
    plan = dry_run(s3, bucket=stack.bucket, prefix=args.prefix, scope=scope, request=request)
    floor = "" if options.get("num_images") else " at least"
    emit(
        args,
        {
            "prefix": args.prefix,
            "objects": plan.objects,
            "skipped": plan.skipped,
            "images": plan.images,
            "model_cost_usd": round(plan.model_cost_usd, 2),
        },
        f"{plan.objects} objects under {args.prefix} ({plan.skipped} skipped): "
        f"{plan.images} images,{floor} ${plan.model_cost_usd:,.2f} at the model "
        "(objects a job already edited are not edited again, so it may cost less)",
    )
    return EXIT_OK


def _backfill(
    args: argparse.Namespace,
    aws: Aws,
    stack: StackOutputs,
    prompt: str | None,
    options: dict[str, Any],
) -> int:
    from kontext_tools.backfill import (  # noqa: PLC0415 - only this command needs it
        BackfillRuns,
        backfill_input,
        wait_for_backfill,
    )

    backfill_arn = required_output(stack, "BackfillStateMachineArn")
    document = backfill_input(
        args.prefix, prompt=prompt, options=options, max_concurrency=args.max_concurrency
    )
    jobs_table = required_output(stack, "JobsTableName")
    runs = BackfillRuns(aws.stepfunctions, aws.dynamodb, backfill_arn, jobs_table)
    execution_arn = runs.start(document)
    print(f"backfill started: {execution_arn}", file=sys.stderr)
    try:
        result = wait_for_backfill(runs, execution_arn, timeout=args.timeout)
    except TimeoutError:
        raise CliError(
            f"gave up waiting after {args.timeout:.0f} s; the backfill goes on: {execution_arn}",
            EXIT_TIMEOUT,
        ) from None
    counts = result.counts
    emit(
        args,
        {"execution": execution_arn, "status": result.status, **counts, "error": result.error},
        f"backfill {result.status}: "
        + ", ".join(f"{counts.get(name, 0)} {name}" for name in counts)
        + (f" ({result.error})" if result.error else ""),
    )
    if result.status != "SUCCEEDED" or counts.get("failed"):
        return EXIT_FAILED
    return EXIT_OK
