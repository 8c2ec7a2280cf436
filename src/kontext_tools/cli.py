"""`kontext-pipeline`: edit images through a deployed stack, or run everything locally.

    kontext-pipeline edit photo.jpg --prompt "make it snow" --out edited/   (deployed stack)
    kontext-pipeline status inputs/abc-photo.jpg                            (a job's state)
    kontext-pipeline results inputs/abc-photo.jpg --out edited/             (its outputs)
    kontext-pipeline put-key                                                (the model's key)
    kontext-pipeline teardown [--keep-bucket]
    kontext-pipeline local --image photo.jpg --prompt "make it snow"        (no AWS at all)
    kontext-pipeline emulator --port 8787                                   (the model emulator)

The stack is `--stack NAME`, else the stack_name in ./samconfig.toml, else
`kontext-pipeline`. `--json` prints one JSON document on stdout for scripts; progress
goes to stderr. Exit codes: 0 success, 1 the job failed, 2 bad usage, input or setup.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kontext_pipeline.errors import PipelineError
from kontext_pipeline.metadata import validate_options
from kontext_pipeline.models import ASPECT_RATIOS, OUTPUT_FORMATS, SAFETY_TOLERANCES, SourceObject

from kontext_tools.deployed import (
    JobProgress,
    StackOutputs,
    download_results,
    empty_bucket,
    find_execution,
    find_stack,
    input_key_for,
    job_progress,
    put_api_key,
    stack_name_from_samconfig,
    upload_image,
)

OPTION_NAMES = (
    "aspect_ratio",
    "num_images",
    "output_format",
    "seed",
    "guidance_scale",
    "safety_tolerance",
    "enhance_prompt",
)
DEFAULT_STACK = "kontext-pipeline"


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's options, as flags; validated by the pipeline's own rules before upload."""
    parser.add_argument("--prompt", required=True, help="what to change in the image")
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    parser.add_argument("--num-images", type=int, help="1 to 4")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--guidance-scale", type=float, help="1 to 20")
    parser.add_argument("--safety-tolerance", choices=SAFETY_TOLERANCES)
    parser.add_argument("--enhance-prompt", action="store_true", default=None)


def chosen_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not None
    }
    validate_options(options)
    return options


class ProgressPrinter:
    """One line per change of state on stderr: state, model status, queue position, time."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, progress: JobProgress, elapsed: float) -> None:
        line = f"state {progress.state}"
        if progress.model_status:
            line += f" · model {progress.model_status}"
        if progress.queue_position is not None:
            line += f" (queue position {progress.queue_position})"
        if line != self._last:
            print(f"  {elapsed:6.1f} s  {line}", file=sys.stderr, flush=True)
            self._last = line


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


# --- against a deployed stack -----------------------------------------------------------


def _session(args: argparse.Namespace) -> Any:
    import boto3  # noqa: PLC0415 - keeps `--help` fast

    return boto3.Session(region_name=args.region) if args.region else boto3.Session()


def _stack(args: argparse.Namespace, session: Any) -> StackOutputs:
    name = args.stack or stack_name_from_samconfig() or DEFAULT_STACK
    return find_stack(session.client("cloudformation"), name)


def follow(
    session: Any,
    stack: StackOutputs,
    source: SourceObject,
    *,
    timeout: float,
    show: ProgressPrinter | None,
) -> JobProgress:
    """Poll the job's execution until it ends (or the timeout passes)."""
    sfn = session.client("stepfunctions")
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
        time.sleep(1.0)
    raise PipelineError(
        f"the job for {source.key} did not finish within {timeout:.0f} s", reason="cli_timeout"
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
        document.update(error=progress.error, reason=progress.cause)
    return document


def run_edit(args: argparse.Namespace) -> int:
    options = chosen_options(args)
    image = Path(args.image)
    if not image.is_file():
        raise PipelineError(f"{image} is not a file", reason="missing_image")
    session = _session(args)
    stack = _stack(args, session)
    key = input_key_for(stack, image, args.key)
    source = upload_image(
        session.client("s3"),
        stack.bucket,
        key,
        image.read_bytes(),
        prompt=args.prompt,
        options=options,
    )
    print(f"uploaded s3://{stack.bucket}/{key}", file=sys.stderr)
    if args.no_wait:
        emit(args, {"key": key, "bucket": stack.bucket, "status": "SUBMITTED"}, key)
        return 0
    progress = follow(session, stack, source, timeout=args.timeout, show=ProgressPrinter())
    return finish(args, session, progress, key)


def finish(args: argparse.Namespace, session: Any, progress: JobProgress, key: str) -> int:
    document = outcome_document(progress, key)
    if progress.execution_status != "SUCCEEDED":
        emit(args, document, f"FAILED: {progress.error} ({progress.cause})")
        return 1
    if getattr(args, "out", None) and document.get("manifest_uri"):
        files = download_results(session.client("s3"), document["manifest_uri"], Path(args.out))
        document["files"] = [str(path) for path in files]
    lines = [f"SUCCEEDED: {len(document.get('outputs', []))} outputs", *document.get("outputs", [])]
    lines += [f"downloaded {path}" for path in document.get("files", [])]
    emit(args, document, "\n".join(lines))
    return 0


def _job_of_key(args: argparse.Namespace, session: Any) -> JobProgress | None:
    """The job for `args.key` in the stack, or None (said to the user) when there is none."""
    stack = _stack(args, session)
    sfn = session.client("stepfunctions")
    execution = find_execution(
        sfn, stack.state_machine_arn, SourceObject(bucket=stack.bucket, key=args.key)
    )
    if execution is None:
        emit(args, {"key": args.key, "status": "NOT_FOUND"}, f"no job for {args.key}")
        return None
    return job_progress(sfn, execution)


def run_status(args: argparse.Namespace) -> int:
    progress = _job_of_key(args, _session(args))
    if progress is None:
        return 1
    document = outcome_document(progress, args.key)
    document["history"] = [{"at": at, "state": state} for at, state in progress.history]
    text = "\n".join(
        [f"{args.key}: {progress.execution_status} (state {progress.state})"]
        + [f"  {at}  {state}" for at, state in progress.history]
    )
    emit(args, document, text)
    return 0 if progress.execution_status in ("RUNNING", "SUCCEEDED") else 1


def run_results(args: argparse.Namespace) -> int:
    session = _session(args)
    progress = _job_of_key(args, session)
    if progress is None:
        return 1
    return finish(args, session, progress, args.key)


def run_put_key(args: argparse.Namespace) -> int:
    session = _session(args)
    stack = _stack(args, session)
    api_key = os.environ.get("FAL_KEY") or getpass.getpass("Model API key (not echoed): ")
    put_api_key(session.client("secretsmanager"), stack, api_key)
    print(f"stored the key in {stack.outputs['FalApiKeySecretArn']}", file=sys.stderr)
    return 0


def run_teardown(args: argparse.Namespace) -> int:
    session = _session(args)
    stack = _stack(args, session)
    cloudformation = session.client("cloudformation")
    cloudformation.delete_stack(StackName=stack.name)
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack.name)
    if args.keep_bucket:
        print(f"stack deleted; kept s3://{stack.bucket}", file=sys.stderr)
        return 0
    s3 = session.client("s3")
    removed = empty_bucket(s3, stack.bucket)
    s3.delete_bucket(Bucket=stack.bucket)
    print(f"stack deleted; removed {removed} object versions and the bucket", file=sys.stderr)
    return 0


# --- local ------------------------------------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    from kontext_tools.emulator import EmulatorTiming  # noqa: PLC0415 - local extras
    from kontext_tools.local.pipeline import LocalPipeline  # noqa: PLC0415

    options = chosen_options(args)
    image = Path(args.image)
    if not image.is_file():
        raise PipelineError(f"{image} is not a file", reason="missing_image")
    fal_base_url = os.environ.get("FAL_BASE_URL") or None
    out_dir = Path(args.out)
    target = fal_base_url or "the local model emulator"
    print(f"Standing up the pipeline on local AWS emulation (model queue: {target}) ...")
    with LocalPipeline(
        fal_base_url=fal_base_url,
        fal_key=os.environ.get("FAL_KEY") or None,
        emulator_timing=EmulatorTiming(
            queue_seconds=args.queue_seconds, run_seconds=args.model_seconds
        ),
    ) as pipeline:
        source = pipeline.upload(image, prompt=args.prompt, options=options)
        print(f"Uploaded {source.s3_uri} with prompt {args.prompt!r} {options or ''}")
        started = time.monotonic()
        received = pipeline.wait_for_notification(
            source, timeout=args.timeout, on_progress=ProgressPrinter()
        )
        notification = received.notification
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "notification.json").write_text(json.dumps(received.envelope, indent=2))
        if notification.status == "FAILED" and notification.failure:
            print(
                f"FAILED after {time.monotonic() - started:.1f} s: "
                f"{notification.failure.reason}: {notification.failure.message}"
            )
            print(f"Notification: {out_dir / 'notification.json'}")
            return 1
        files = pipeline.download_outputs(notification, out_dir)
        print(
            f"SUCCEEDED in {time.monotonic() - started:.1f} s (request {notification.request_id})"
        )
        for output in notification.outputs:
            print(f"  {output.s3_uri}  {output.width}x{output.height}  {output.size} bytes")
        print(f"Results in {out_dir.resolve()}/:")
        for path in [*files, out_dir / "notification.json"]:
            print(f"  {path.name}")
    return 0


def run_emulator(args: argparse.Namespace) -> int:
    from kontext_tools.emulator import main as emulator_main  # noqa: PLC0415

    return emulator_main(args.emulator_args)


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kontext-pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def deployed(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--stack", help=f"stack name (default: samconfig.toml, then {DEFAULT_STACK})"
        )
        command.add_argument("--region", help="AWS region (default: your AWS configuration)")
        command.add_argument("--json", action="store_true", help="one JSON document on stdout")
        return command

    edit = deployed("edit", "upload an image to a deployed stack and follow the job")
    edit.add_argument("image", help="image file to edit")
    add_option_arguments(edit)
    edit.add_argument("--key", help="object key (default: <InputPrefix><random>-<file name>)")
    edit.add_argument("--out", help="download the outputs into this folder")
    edit.add_argument("--no-wait", action="store_true", help="upload and return")
    edit.add_argument("--timeout", type=float, default=1800.0, help="give up after (1800 s)")
    edit.set_defaults(run=run_edit)

    status = deployed("status", "show a job's state and history")
    status.add_argument("key", help="the uploaded object's key")
    status.set_defaults(run=run_status)

    results = deployed("results", "download a finished job's outputs")
    results.add_argument("key", help="the uploaded object's key")
    results.add_argument("--out", default="results", help="folder (results)")
    results.set_defaults(run=run_results)

    deployed(
        "put-key", "store the model's API key (FAL_KEY or asked for) in the stack's secret"
    ).set_defaults(run=run_put_key)
    teardown = deployed("teardown", "delete the stack, and the bucket unless --keep-bucket")
    teardown.add_argument("--keep-bucket", action="store_true")
    teardown.set_defaults(run=run_teardown)

    local = commands.add_parser(
        "local", help="run the whole pipeline on this machine (moto + model emulator)"
    )
    local.add_argument("--image", required=True, help="image file to upload")
    add_option_arguments(local)
    local.add_argument("--out", default="demo-output", help="folder for outputs (demo-output)")
    local.add_argument(
        "--model-seconds", type=float, default=1.0, help="emulated model run time (1.0)"
    )
    local.add_argument(
        "--queue-seconds", type=float, default=0.3, help="emulated time in the queue (0.3)"
    )
    local.add_argument("--timeout", type=float, default=180.0, help="give up after (180 s)")
    local.set_defaults(run=run_local)

    emulator = commands.add_parser("emulator", help="run the model-queue emulator alone")
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER)
    emulator.set_defaults(run=run_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except PipelineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
