"""`edit`, `status` and `results`: one job in a deployed stack, from upload to its outputs."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.models import SourceObject

from kontext_tools.cli.arguments import checked_edit_request, checked_image, checked_out_dir
from kontext_tools.cli.aws import Aws, deployed_stack
from kontext_tools.cli.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    CliError,
)
from kontext_tools.cli.output import ProgressPrinter, emit
from kontext_tools.cli.results import ResultsFolder, report_from_manifest, report_of_failure
from kontext_tools.deployed import (
    JobProgress,
    StackOutputs,
    download_results,
    find_execution,
    input_key_for,
    job_progress,
    prompt_goes_to_sidecar,
    sidecar_key_for,
    upload_image,
)

if TYPE_CHECKING:
    from pathlib import Path

    from types_boto3_s3.client import S3Client
    from types_boto3_stepfunctions.client import SFNClient

    from kontext_tools.cli.arguments import EditRequest


def run_edit(args: argparse.Namespace) -> int:
    image = checked_image(args.image)
    request = checked_edit_request(args)
    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    source = _upload(aws.s3, stack, image, request, args.key)
    if args.no_wait:
        emit(args, {"key": source.key, "bucket": stack.bucket, "status": "SUBMITTED"}, source.key)
        return EXIT_OK
    try:
        progress = follow(
            aws.stepfunctions, stack, source, timeout=args.timeout, show=ProgressPrinter()
        )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; the job goes on in the stack: kontext-pipeline status {source.key}",
            EXIT_INTERRUPTED,
        ) from None
    return finish(args, aws.s3, progress, source, ResultsFolder(request.out_dir, image))


def _upload(
    s3: S3Client, stack: StackOutputs, image: Path, request: EditRequest, key: str | None
) -> SourceObject:
    key = input_key_for(stack, image, key)
    source = upload_image(
        s3,
        stack.bucket,
        key,
        image.read_bytes(),
        prompt=request.prompt,
        options=request.options,
        metadata=request.metadata,
    )
    if prompt_goes_to_sidecar(request.prompt, request.options):
        print(
            f"the prompt is too long for S3 metadata: uploaded {sidecar_key_for(key)} first",
            file=sys.stderr,
        )
    print(f"uploaded s3://{stack.bucket}/{key}", file=sys.stderr)
    return source


def follow(
    sfn: SFNClient,
    stack: StackOutputs,
    source: SourceObject,
    *,
    timeout: float,
    show: ProgressPrinter | None,
) -> JobProgress:
    """Poll the job's execution until it ends (or the timeout passes)."""
    started = time.monotonic()
    progress: JobProgress | None = None
    execution: dict[str, Any] | None = None
    while time.monotonic() - started < timeout:
        # Found once: the job's execution does not change, only its progress.
        execution = execution or find_execution(sfn, stack.state_machine_arn, source)
        if execution is not None:
            progress = job_progress(sfn, execution)
            if show is not None:
                show(progress, time.monotonic() - started)
            if progress.execution_status != "RUNNING":
                return progress
        elif show is not None:
            show.no_job_yet(time.monotonic() - started)
        time.sleep(1.0)
    raise CliError(
        f"gave up waiting after {timeout:.0f} s; the job goes on in the stack: "
        f"kontext-pipeline status {source.key}",
        EXIT_TIMEOUT,
    )


def outcome_document(progress: JobProgress, key: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "key": key,
        "status": progress.execution_status,
        "execution": progress.execution_arn,
        "state": progress.state,
    }
    if progress.output:
        document.update(
            manifest_uri=progress.output.get("manifest_uri"),
            outputs=progress.output.get("outputs", []),
        )
    if progress.error:
        document.update(
            error=progress.error, reason=progress.cause, message=progress.failure_message
        )
    return document


def finish(
    args: argparse.Namespace,
    s3: S3Client,
    progress: JobProgress,
    source: SourceObject,
    results: ResultsFolder,
) -> int:
    """The job's outcome on stdout, its results (and index.html) into --out when given."""
    document = outcome_document(progress, source.key)
    if progress.execution_status == "RUNNING":
        emit(args, document, f"{source.key}: still running (state {progress.state}); try later")
        return EXIT_TIMEOUT  # not finished: not a failure
    results = results.with_input(s3, source)
    if progress.execution_status != "SUCCEEDED":
        if results.out_dir is not None:
            report = report_of_failure(results.out_dir, progress, source.key, results.input_image)
            document["report"] = str(report)
        emit(
            args,
            document,
            f"FAILED: {progress.cause}: {progress.failure_message or progress.error}",
        )
        return EXIT_FAILED
    if results.out_dir is not None and document.get("manifest_uri"):
        files = download_results(s3, document["manifest_uri"], results.out_dir)
        document["files"] = [str(path) for path in files]
        report = report_from_manifest(results.out_dir, results.input_image, progress)
        document["report"] = str(report)
    emit(args, document, _succeeded_text(document))
    return EXIT_OK


def _succeeded_text(document: dict[str, Any]) -> str:
    lines = [f"SUCCEEDED: {len(document.get('outputs', []))} outputs", *document.get("outputs", [])]
    lines += [f"downloaded {path}" for path in document.get("files", [])]
    if "report" in document:
        lines.append(f"open {document['report']} to compare the input and the outputs")
    return "\n".join(lines)


def job_of_key(args: argparse.Namespace, aws: Aws) -> tuple[StackOutputs, JobProgress]:
    """The job for `args.key` in the stack; no job is a usage problem, not a failed job."""
    stack = deployed_stack(args, aws)
    execution = find_execution(
        aws.stepfunctions, stack.state_machine_arn, SourceObject(bucket=stack.bucket, key=args.key)
    )
    if execution is None:
        raise CliError(
            f"no job for {args.key} in stack {stack.name}: check the key "
            "(kontext-pipeline jobs lists recent ones)"
        )
    return stack, job_progress(aws.stepfunctions, execution)


def run_status(args: argparse.Namespace) -> int:
    _, progress = job_of_key(args, Aws(args.region))
    document = outcome_document(progress, args.key)
    document["history"] = [{"at": at, "state": state} for at, state in progress.history]
    lines = [f"{args.key}: {progress.execution_status} (state {progress.state})"]
    if progress.error:
        lines.append(f"  failed: {progress.cause}: {progress.failure_message or progress.error}")
    lines += [f"  {at}  {state}" for at, state in progress.history]
    emit(args, document, "\n".join(lines))
    return EXIT_OK if progress.execution_status in ("RUNNING", "SUCCEEDED") else EXIT_FAILED


def run_results(args: argparse.Namespace) -> int:
    out_dir = checked_out_dir(args.out)
    aws = Aws(args.region)
    stack, progress = job_of_key(args, aws)
    source = SourceObject(bucket=stack.bucket, key=args.key)
    return finish(args, aws.s3, progress, source, ResultsFolder(out_dir))
