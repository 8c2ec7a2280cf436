"""`kontext-pipeline`: edit images through a deployed stack, or run everything locally.

    kontext-pipeline edit photo.jpg --prompt "make it snow" --out edited/   (deployed stack)
    kontext-pipeline status inputs/abc-photo.jpg                            (a job's state)
    kontext-pipeline results inputs/abc-photo.jpg --out edited/             (its outputs)
    kontext-pipeline jobs --status FAILED --since 1h                        (recent jobs)
    kontext-pipeline redrive                                    (replay the trigger's DLQ)
    kontext-pipeline put-key                                                (the model's key)
    kontext-pipeline teardown [--keep-bucket]
    kontext-pipeline local --image photo.jpg --prompt "make it snow"        (no AWS at all)
    kontext-pipeline local --image photos/ --concurrency 2 --prompt "..."   (a local burst)
    kontext-pipeline local --image photos/ --backfill --prompt "..."        (a local backfill)
    kontext-pipeline backfill --prefix inputs/2025/ [--dry-run]     (edit what is there)
    kontext-pipeline callback-secret                            (signs per-job callbacks)
    kontext-pipeline emulator --port 8787                                   (the model emulator)

The stack is `--stack NAME`, else the stack_name in ./samconfig.toml, else
`kontext-pipeline`. `--json` prints one JSON document on stdout for scripts; progress
goes to stderr. Exit codes: 0 success, 1 the job failed, 2 bad usage, input or setup,
3 gave up waiting (the job may still finish), 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from kontext_pipeline.errors import PipelineError
from kontext_pipeline.metadata import MAX_PROMPT_CHARS, validate_options
from kontext_pipeline.models import ASPECT_RATIOS, OUTPUT_FORMATS, SAFETY_TOLERANCES, SourceObject

from kontext_tools.deployed import (
    EXECUTION_STATUSES,
    JobProgress,
    StackOutputs,
    download_results,
    find_execution,
    find_stack,
    input_key_for,
    job_progress,
    list_jobs,
    prompt_goes_to_sidecar,
    put_api_key,
    redrive_dead_letters,
    sidecar_key_for,
    stack_name_from_samconfig,
    teardown_stack,
    trigger_function_of,
    upload_image,
    user_metadata_for,
)
from kontext_tools.report import manifest_options, write_report

OPTION_NAMES = (
    "aspect_ratio",
    "num_images",
    "output_format",
    "seed",
    "guidance_scale",
    "safety_tolerance",
    "enhance_prompt",
    "sync_mode",
)
DEFAULT_STACK = "kontext-pipeline"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
HEARTBEAT_SECONDS = 10.0
LOCAL_LOG_NAME = "local-run.log"
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


class CliError(Exception):
    """A one-line message for the person at the terminal, and the exit code that goes with it."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def package_version() -> str:
    try:
        return version("kontext-pipeline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# --- checks made before anything is uploaded --------------------------------------------


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's options, as flags; validated by the pipeline's own rules before upload."""
    parser.add_argument("--prompt", required=True, help="what to change in the image")
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    parser.add_argument("--num-images", type=int, help="1 to 4")
    # The metadata contract takes `jpg` for `jpeg`, and so does the command.
    parser.add_argument("--output-format", choices=(*OUTPUT_FORMATS, "jpg"), help="jpeg or png")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--guidance-scale", type=float, help="1 to 20")
    parser.add_argument("--safety-tolerance", choices=SAFETY_TOLERANCES)
    parser.add_argument("--enhance-prompt", action="store_true", default=None)
    parser.add_argument(
        "--sync-mode",
        action="store_true",
        default=None,
        help="the model returns outputs inline (data: URIs) instead of hosted URLs",
    )
    add_metadata_argument(parser)


def add_metadata_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metadata",
        action="append",
        metavar="NAME=VALUE",
        help="more user metadata for the upload, repeatable (e.g. callback-url=https://...)",
    )


def add_scale_commands(
    deployed: Callable[[str, str], argparse.ArgumentParser], local: argparse.ArgumentParser
) -> None:
    """`backfill`, `callback-secret` and `local --backfill` (README, "At scale and on
    budget")."""
    add_local_backfill_arguments(local)
    backfill = deployed(
        "backfill", "edit the images already under a prefix, each once (BackfillStateMachine)"
    )
    add_backfill_arguments(backfill)
    backfill.set_defaults(run=run_backfill)
    deployed(
        "callback-secret", "show the secret that signs per-job callbacks (whsec_...)"
    ).set_defaults(run=run_callback_secret)


def add_local_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backfill",
        action="store_true",
        help="put the images in the bucket as if already there (no upload event) and run "
        "the stack's backfill over them",
    )
    parser.add_argument(
        "--max-concurrency", type=int, help="with --backfill: objects started at once"
    )


def add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", required=True, help="key prefix under InputPrefix")
    parser.add_argument("--prompt", help="prompt for every object (default: each one's own)")
    parser.add_argument("--num-images", type=int, help="1 to 4, for every object")
    parser.add_argument("--output-format", choices=(*OUTPUT_FORMATS, "jpg"))
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    parser.add_argument(
        "--max-concurrency", type=int, help="objects at once (default: BackfillMaxConcurrency)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count the objects and the model's cost only"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after (3600 s)")


def chosen_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not None
    }
    validate_options(options)
    return options


METADATA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def parse_metadata(items: Sequence[str] | None) -> dict[str, str]:
    """`--metadata NAME=VALUE`, repeatable: any user metadata (callback-url, say).

    The prompt and the model's options have flags of their own, checked before upload.
    """
    metadata: dict[str, str] = {}
    for item in items or []:
        name, separator, value = item.partition("=")
        name = name.strip().lower()
        if not separator or not METADATA_NAME.match(name):
            raise CliError(f"--metadata {item!r}: write NAME=VALUE (NAME of letters, digits, -, _)")
        if name.replace("-", "_") in ("prompt", *OPTION_NAMES):
            raise CliError(f"--metadata {name}: use --{name.replace('_', '-')} instead")
        metadata[name] = value
    return metadata


def checked_prompt(prompt: str) -> str:
    """The pipeline's prompt rules, applied before upload (a refused job still costs a trip)."""
    if not prompt.strip():
        raise CliError("the prompt is empty: say what to change, e.g. --prompt 'make it snow'")
    if len(prompt.strip()) > MAX_PROMPT_CHARS:
        raise CliError(
            f"the prompt is {len(prompt.strip()):,} characters; the pipeline accepts at most "
            f"{MAX_PROMPT_CHARS:,}"
        )
    return prompt


def checked_image(path: str) -> Path:
    image = Path(path)
    if not image.is_file():
        raise CliError(f"{image} is not a file: give the path of the image to edit")
    return image


def checked_out_dir(path: str | None) -> Path | None:
    """A folder results can be written to, checked now so a bad path fails before the job
    runs; made only when something is written into it."""
    if path is None:
        return None
    out_dir = Path(path)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out_dir} is a file, not a folder: choose another --out")
    existing = next(folder for folder in (out_dir, *out_dir.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise CliError(f"--out {out_dir} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"--out {out_dir} is not writable: choose another --out")
    return out_dir


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`30m`, `2h`, `1d`, `45s` ago, or an ISO 8601 time."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(
            f"--since {text!r}: give a duration such as 30m, 2h, 1d, or an ISO time"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_parameter_overrides(items: Sequence[str], template: Path) -> dict[str, str]:
    """`Name=Value` or `ParameterKey=Name,ParameterValue=Value` (sam deploy's two forms),
    checked against the template's parameters and their allowed values."""
    from kontext_tools.local.stack import load_template  # noqa: PLC0415 - local extras

    declared: dict[str, Any] = load_template(template).get("Parameters", {})
    overrides: dict[str, str] = {}
    for item in items:
        long_form = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", item, re.DOTALL)
        name, separator, value = (
            (long_form.group(1), "=", long_form.group(2)) if long_form else item.partition("=")
        )
        if not separator or not name:
            raise CliError(f"--parameter-overrides {item!r}: write Name=Value")
        if name not in declared:
            raise CliError(
                f"--parameter-overrides: {name!r} is not a template parameter; "
                f"known: {', '.join(sorted(declared))}"
            )
        allowed = declared[name].get("AllowedValues")
        if allowed and value not in [str(choice) for choice in allowed]:
            raise CliError(
                f"--parameter-overrides: {name}={value!r} is not one of "
                f"{', '.join(str(choice) for choice in allowed)}"
            )
        overrides[name] = value
    return overrides


# --- progress ---------------------------------------------------------------------------


class ProgressPrinter:
    """A line on stderr when the job's state changes, and a heartbeat while nothing does."""

    def __init__(self, stream: TextIO | None = None, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._stream = stream
        self._heartbeat = heartbeat
        self._last = ""
        self._last_at = 0.0
        self.interrupted = threading.Event()

    def __call__(self, progress: JobProgress, elapsed: float) -> None:
        if self.interrupted.is_set():
            # Ctrl-C swallowed by code in between (a retrying client, say) still stops here.
            raise KeyboardInterrupt
        line = f"state {progress.state}"
        if progress.model_status:
            line += f" · model {progress.model_status}"
        if progress.queue_position is not None:
            line += f" (queue position {progress.queue_position})"
        if line != self._last:
            self._print(f"  {elapsed:6.1f} s  {line}")
            self._last, self._last_at = line, elapsed
        elif elapsed - self._last_at >= self._heartbeat:
            self._print(f"  {elapsed:6.1f} s  still {line}")
            self._last_at = elapsed

    def no_job_yet(self, elapsed: float) -> None:
        """The heartbeat before the trigger has started the job's execution."""
        if elapsed - self._last_at >= self._heartbeat:
            self._print(f"  {elapsed:6.1f} s  waiting for the trigger to start the job")
            self._last_at = elapsed

    def _print(self, text: str) -> None:
        print(text, file=self._stream or sys.stderr, flush=True)


class NotificationWatch:
    """Progress for the local run, which waits for the job's notification: an execution
    that ended without one (FailureNotReported, say) stops the wait instead of the timeout."""

    def __init__(self, printer: ProgressPrinter, log_file: Path, grace: float = 5.0) -> None:
        self.printer = printer
        self._log_file = log_file
        self._grace = grace
        self._ended_at: float | None = None

    def __call__(self, progress: JobProgress, elapsed: float) -> None:
        self.printer(progress, elapsed)
        if progress.execution_status == "RUNNING":
            return
        # The notification is published before the execution ends; allow for its delivery.
        self._ended_at = elapsed if self._ended_at is None else self._ended_at
        if elapsed - self._ended_at >= self._grace:
            raise CliError(
                f"the job ended {progress.execution_status} ({progress.error}: "
                f"{progress.cause}) without a notification; see {self._log_file}",
                EXIT_FAILED,
            )


def emit(args: argparse.Namespace, document: Mapping[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def say(args: argparse.Namespace, text: str) -> None:
    """Human-readable lines: stdout, unless stdout is for the JSON document."""
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


# --- against a deployed stack -----------------------------------------------------------


class Aws:
    """A boto3 session whose clients give up in bounded time (a CLI must not hang offline)."""

    def __init__(self, region: str | None) -> None:
        import boto3  # noqa: PLC0415 - keeps `--help` fast
        from botocore.config import Config  # noqa: PLC0415

        # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what the other SDKs read.
        region = region or os.environ.get("AWS_REGION") or None
        self.session = boto3.Session(region_name=region) if region else boto3.Session()
        self._config = Config(
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
        )

    def client(self, service: str) -> Any:
        return self.session.client(service, config=self._config)


def _stack(args: argparse.Namespace, aws: Aws) -> StackOutputs:
    name = args.stack or stack_name_from_samconfig() or DEFAULT_STACK
    return find_stack(aws.client("cloudformation"), name)


def follow(
    aws: Aws,
    stack: StackOutputs,
    source: SourceObject,
    *,
    timeout: float,
    show: ProgressPrinter | None,
) -> JobProgress:
    """Poll the job's execution until it ends (or the timeout passes)."""
    sfn = aws.client("stepfunctions")
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


def run_edit(args: argparse.Namespace) -> int:
    image = checked_image(args.image)
    prompt = checked_prompt(args.prompt)
    options = chosen_options(args)
    metadata = parse_metadata(args.metadata)
    out_dir = checked_out_dir(args.out)
    aws = Aws(args.region)
    stack = _stack(args, aws)
    key = input_key_for(stack, image, args.key)
    source = upload_image(
        aws.client("s3"),
        stack.bucket,
        key,
        image.read_bytes(),
        prompt=prompt,
        options=options,
        metadata=metadata,
    )
    if prompt_goes_to_sidecar(prompt, options):
        print(
            f"the prompt is too long for S3 metadata: uploaded {sidecar_key_for(key)} first",
            file=sys.stderr,
        )
    print(f"uploaded s3://{stack.bucket}/{key}", file=sys.stderr)
    if args.no_wait:
        emit(args, {"key": key, "bucket": stack.bucket, "status": "SUBMITTED"}, key)
        return EXIT_OK
    try:
        progress = follow(aws, stack, source, timeout=args.timeout, show=ProgressPrinter())
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; the job goes on in the stack: kontext-pipeline status {key}",
            EXIT_INTERRUPTED,
        ) from None
    return finish(args, aws, progress, key, bucket=stack.bucket, out_dir=out_dir, input_image=image)


def finish(
    args: argparse.Namespace,
    aws: Aws,
    progress: JobProgress,
    key: str,
    *,
    bucket: str,
    out_dir: Path | None,
    input_image: Path | None = None,
) -> int:
    document = outcome_document(progress, key)
    s3 = aws.client("s3")
    if progress.execution_status == "RUNNING":
        emit(args, document, f"{key}: still running (state {progress.state}); try later")
        return EXIT_TIMEOUT  # not finished: not a failure
    if out_dir is not None and input_image is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        input_image = _download_input(s3, bucket, key, out_dir)
    if progress.execution_status != "SUCCEEDED":
        if out_dir is not None:
            job = {
                "status": progress.execution_status,
                "source": {"key": key},
                "prompt": progress.prompt,
                "execution": progress.execution_arn,
                "failure": {"reason": progress.cause, "message": progress.failure_message or ""},
            }
            document["report"] = str(write_report(out_dir, job=job, input_image=input_image))
        emit(
            args,
            document,
            f"FAILED: {progress.cause}: {progress.failure_message or progress.error}",
        )
        return EXIT_FAILED
    if out_dir is not None and document.get("manifest_uri"):
        files = download_results(s3, document["manifest_uri"], out_dir)
        document["files"] = [str(path) for path in files]
        report = _report_from_manifest(out_dir, "SUCCEEDED", input_image, progress)
        document["report"] = str(report)
    lines = [f"SUCCEEDED: {len(document.get('outputs', []))} outputs", *document.get("outputs", [])]
    lines += [f"downloaded {path}" for path in document.get("files", [])]
    if "report" in document:
        lines.append(f"open {document['report']} to compare the input and the outputs")
    emit(args, document, "\n".join(lines))
    return EXIT_OK


def _download_input(s3: Any, bucket: str, key: str, out_dir: Path) -> Path | None:
    """The job's input image, for the report (best effort: it may have been deleted)."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    target = out_dir / f"input{Path(key).suffix.lower()}"
    try:
        target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError:
        return None
    return target


def _report_from_manifest(
    out_dir: Path, status: str, input_image: Path | None, progress: JobProgress | None = None
) -> Path:
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    job = {**manifest, "status": status}
    if progress is not None:
        job["execution"] = progress.execution_arn
    outputs = [
        (out_dir / str(record["key"]).rsplit("/", 1)[-1], record)
        for record in manifest.get("outputs", [])
    ]
    return write_report(
        out_dir,
        job=job,
        input_image=input_image,
        outputs=outputs,
        options=manifest_options(manifest_path),
    )


def _job_of_key(args: argparse.Namespace, aws: Aws) -> tuple[StackOutputs, JobProgress]:
    """The job for `args.key` in the stack; no job is a usage problem, not a failed job."""
    stack = _stack(args, aws)
    sfn = aws.client("stepfunctions")
    execution = find_execution(
        sfn, stack.state_machine_arn, SourceObject(bucket=stack.bucket, key=args.key)
    )
    if execution is None:
        raise CliError(
            f"no job for {args.key} in stack {stack.name}: check the key "
            "(kontext-pipeline jobs lists recent ones)"
        )
    return stack, job_progress(sfn, execution)


def run_status(args: argparse.Namespace) -> int:
    _, progress = _job_of_key(args, Aws(args.region))
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
    stack, progress = _job_of_key(args, aws)
    return finish(args, aws, progress, args.key, bucket=stack.bucket, out_dir=out_dir)


def run_jobs(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    aws = Aws(args.region)
    stack = _stack(args, aws)
    jobs = list_jobs(
        aws.client("stepfunctions"),
        stack.state_machine_arn,
        status=args.status,
        since=since,
        limit=args.limit,
    )
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
    if not jobs:
        lines = [
            f"no jobs in stack {stack.name}" + (f" since {since:%Y-%m-%d %H:%M}" if since else "")
        ]
    emit(args, {"stack": stack.name, "jobs": [job.document() for job in jobs]}, "\n".join(lines))
    return EXIT_OK


def run_redrive(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    stack = _stack(args, aws)
    queue_url = stack.outputs.get("TriggerDeadLetterQueueUrl")
    if not queue_url:
        raise CliError(f"stack {stack.name} has no TriggerDeadLetterQueueUrl output; redeploy it")
    function = trigger_function_of(aws.client("s3"), stack.bucket)
    outcome = redrive_dead_letters(aws.client("sqs"), aws.client("lambda"), queue_url, function)
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


def run_backfill(args: argparse.Namespace) -> int:
    from kontext_tools.backfill import (  # noqa: PLC0415 - only this command needs it
        backfill_input,
        dry_run,
        start_backfill,
        wait_for_backfill,
    )

    options = {
        name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name, None) is not None
    }
    if options:
        validate_options(options)
    prompt = checked_prompt(args.prompt) if args.prompt is not None else None
    if args.max_concurrency is not None and not 1 <= args.max_concurrency <= 9999:
        raise CliError("--max-concurrency takes 1 to 9999")
    aws = Aws(args.region)
    stack = _stack(args, aws)
    if not args.prefix.startswith(stack.input_prefix):
        raise CliError(
            f"--prefix {args.prefix!r} is outside the input prefix {stack.input_prefix!r}: "
            "the backfill would skip every object"
        )
    if args.dry_run:
        plan = dry_run(
            aws.client("s3"),
            bucket=stack.bucket,
            prefix=args.prefix,
            input_prefix=stack.input_prefix,
            output_prefix=stack.outputs.get("OutputPrefix", "outputs/"),
            prompt=prompt,
            options=options,
        )
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
    backfill_arn = stack.outputs.get("BackfillStateMachineArn")
    if not backfill_arn:
        raise CliError(f"stack {stack.name} has no BackfillStateMachineArn output; redeploy it")
    sfn = aws.client("stepfunctions")
    document = backfill_input(
        args.prefix, prompt=prompt, options=options, max_concurrency=args.max_concurrency
    )
    execution_arn = start_backfill(sfn, backfill_arn, document)
    print(f"backfill started: {execution_arn}", file=sys.stderr)
    try:
        result = wait_for_backfill(sfn, execution_arn, timeout=args.timeout)
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


def run_callback_secret(args: argparse.Namespace) -> int:
    from kontext_pipeline.callbacks import displayed_secret  # noqa: PLC0415

    aws = Aws(args.region)
    stack = _stack(args, aws)
    secret_arn = stack.outputs.get("CallbackSigningSecretArn")
    if not secret_arn:
        raise CliError(f"stack {stack.name} has no CallbackSigningSecretArn output; redeploy it")
    value = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    # Printed here only, for the receivers' configuration; nothing else logs it.
    emit(args, {"secret": displayed_secret(value)}, displayed_secret(value))
    return EXIT_OK


def run_put_key(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    stack = _stack(args, aws)
    api_key = os.environ.get("FAL_KEY") or getpass.getpass("Model API key (not echoed): ")
    put_api_key(aws.client("secretsmanager"), stack, api_key)
    print(f"stored the key in {stack.outputs['FalApiKeySecretArn']}", file=sys.stderr)
    return EXIT_OK


def run_teardown(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    # Not through _stack: a stack whose first deploy rolled back has no outputs to find.
    name = args.stack or stack_name_from_samconfig() or DEFAULT_STACK
    done = teardown_stack(
        aws.client("cloudformation"), aws.client("s3"), name, keep_bucket=args.keep_bucket
    )
    print(done.summary(), file=sys.stderr)
    return EXIT_OK


# --- local ------------------------------------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    from kontext_tools.emulator import EmulatorTiming  # noqa: PLC0415 - local extras
    from kontext_tools.local.build import BuildError  # noqa: PLC0415
    from kontext_tools.local.pipeline import LocalPipeline  # noqa: PLC0415
    from kontext_tools.local.stack import TemplateError  # noqa: PLC0415

    images = checked_images(args.image)
    prompt = checked_prompt(args.prompt)
    options = chosen_options(args)
    metadata = parse_metadata(args.metadata)
    out_dir = checked_out_dir(args.out)
    assert out_dir is not None  # --out has a default
    if args.concurrency is not None and args.concurrency < 1:
        raise CliError("--concurrency takes 1 or more (requests the emulated model runs at once)")
    overrides = parse_parameter_overrides(args.parameter_overrides or [], TEMPLATE_PATH)
    fal_base_url = overrides.pop("FalBaseUrl", None) or os.environ.get("FAL_BASE_URL") or None
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = out_dir / LOCAL_LOG_NAME
    log_file.write_text("", encoding="utf-8")
    target = fal_base_url or "the local model emulator"
    say(args, f"Standing up the pipeline on local AWS emulation (model queue: {target}) ...")
    printer = ProgressPrinter()
    started = time.monotonic()
    try:
        with (
            _interruptible(printer),
            LocalPipeline(
                fal_base_url=fal_base_url,
                fal_key=os.environ.get("FAL_KEY") or None,
                emulator_timing=EmulatorTiming(
                    queue_seconds=args.queue_seconds,
                    run_seconds=args.model_seconds,
                    concurrency=args.concurrency,
                ),
                parameters=overrides,
                log_file=log_file,
            ) as pipeline,
        ):
            if len(images) > 1 or args.backfill:
                return run_local_burst(
                    args,
                    pipeline=pipeline,
                    images=images,
                    prompt=prompt,
                    options=options,
                    metadata=metadata,
                    out_dir=out_dir,
                    log_file=log_file,
                )
            image = images[0]
            source = pipeline.upload(image, prompt=prompt, options=options, metadata=metadata)
            if prompt_goes_to_sidecar(prompt, options):
                say(args, f"Prompt too long for S3 metadata: put {sidecar_key_for(source.key)}")
            say(args, f"Uploaded {source.s3_uri} with prompt {_short(prompt)!r} {options or ''}")
            started = time.monotonic()
            try:
                received = pipeline.wait_for_notification(
                    source, timeout=args.timeout, on_progress=NotificationWatch(printer, log_file)
                )
            except TimeoutError:
                raise CliError(
                    f"no result within --timeout {args.timeout:.0f} s; the local run was stopped "
                    f"and nothing is left running (logs: {log_file})",
                    EXIT_TIMEOUT,
                ) from None
            return _finish_local(
                args,
                pipeline=pipeline,
                received=received,
                out_dir=out_dir,
                image=image,
                log_file=log_file,
                started=started,
            )
    except (BuildError, TemplateError) as exc:
        # sam build's output can be long: the terminal gets its first line, the log all of it.
        with log_file.open("a", encoding="utf-8") as log:
            log.write(f"{exc}\n")
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CliError(
            f"the local stack could not be stood up: {first_line} (all of it: {log_file})"
        ) from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted: the local run was stopped and nothing is left running", EXIT_INTERRUPTED
        ) from None


def _finish_local(
    args: argparse.Namespace,
    *,
    pipeline: Any,
    received: Any,
    out_dir: Path,
    image: Path,
    log_file: Path,
    started: float,
) -> int:
    notification = received.notification
    seconds = time.monotonic() - started
    document: dict[str, Any] = {
        "status": notification.status,
        "key": notification.source.key,
        "request_id": notification.request_id,
        "seconds": round(seconds, 2),
        "notification": notification.model_dump(mode="json"),
        "log_file": str(log_file),
    }
    files, report = _write_local_results(pipeline, received, out_dir, image)
    document.update(files=[str(path) for path in files], report=str(report))
    if notification.status == "FAILED" and notification.failure:
        failure = notification.failure
        document["failure"] = failure.model_dump(mode="json")
        emit(
            args,
            document,
            f"FAILED after {seconds:.1f} s: {failure.reason}: {failure.message}\n"
            f"Report: {report}\nLogs of the emulated AWS: {log_file}",
        )
        return EXIT_FAILED
    lines = [f"SUCCEEDED in {seconds:.1f} s (request {notification.request_id})"]
    lines += [
        f"  {output.s3_uri}  {output.width}x{output.height}  {output.size} bytes"
        for output in notification.outputs
    ]
    lines.append(f"Results in {out_dir.resolve()}/:")
    lines += [f"  {path.name}" for path in [*files, out_dir / "notification.json", report]]
    lines.append(f"Open {report} to compare the input and the outputs.")
    lines.append(f"Logs of the emulated AWS: {log_file}")
    emit(args, document, "\n".join(lines))
    return EXIT_OK


def _write_local_results(
    pipeline: Any, received: Any, out_dir: Path, image: Path
) -> tuple[list[Path], Path]:
    """notification.json, the outputs (when there are any) and index.html, into out_dir."""
    notification = received.notification
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "notification.json").write_text(json.dumps(received.envelope, indent=2))
    files: list[Path] = []
    if notification.status == "SUCCEEDED":
        files = pipeline.download_outputs(notification, out_dir)
    outputs = [
        (out_dir / output.key.rsplit("/", 1)[-1], output.model_dump(mode="json"))
        for output in notification.outputs
    ]
    report = write_report(
        out_dir,
        job=notification.model_dump(mode="json"),
        input_image=image,
        outputs=outputs,
        options=manifest_options(out_dir / "manifest.json") if files else None,
    )
    return files, report


# --- local bursts: several images at once -----------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif")


def checked_images(paths: Sequence[str]) -> list[Path]:
    """Each --image: a file, or a folder whose images (by suffix, sorted) are all taken."""
    images: list[Path] = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            found = sorted(
                item
                for item in folder.iterdir()
                if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise CliError(
                    f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
                    "give image files or a folder of them"
                )
            images += found
        else:
            images.append(checked_image(path))
    return images


def result_folders(images: Sequence[Path]) -> list[str]:
    """One folder name per image, its name without the suffix; repeats get -2, -3, ..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for image in images:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", image.stem).strip("-.") or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


class BurstProgress:
    """One line on stderr with the counts, when they change, and a heartbeat otherwise."""

    def __init__(self, total: int, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._total = total
        self._heartbeat = heartbeat
        self._last = ""
        self._last_at = 0.0

    def show(self, counts: Mapping[str, int], elapsed: float) -> None:
        line = f"{self._total} images: " + " · ".join(
            f"{counts.get(name, 0)} {name}" for name in ("queued", "running", "done", "failed")
        )
        if line != self._last or elapsed - self._last_at >= self._heartbeat:
            print(f"  {elapsed:6.1f} s  {line}", file=sys.stderr, flush=True)
            self._last, self._last_at = line, elapsed


def burst_counts(pipeline: Any, finished: Mapping[str, Any], total: int) -> dict[str, int]:
    """queued / running / done / failed. Running is what the emulated model runs now; with
    an external queue (FAL_BASE_URL) it cannot be seen, and every open job counts as queued."""
    failed = sum(1 for item in finished.values() if item.notification.status != "SUCCEEDED")
    running = 0
    if pipeline.emulator is not None:
        running = sum(
            1 for request in pipeline.emulator.requests() if request.status == "IN_PROGRESS"
        )
    open_jobs = total - len(finished)
    running = min(running, open_jobs)
    return {
        "queued": open_jobs - running,
        "running": running,
        "done": len(finished) - failed,
        "failed": failed,
    }


def backfill_existing(
    args: argparse.Namespace,
    pipeline: Any,
    files: Mapping[str, Path],
    metadata: Mapping[str, str],
) -> list[SourceObject]:
    """`local --backfill`: the images are put in the bucket as if they had been there
    before the stack (no event reaches the trigger), then the stack's backfill edits them."""
    pipeline.put_existing(
        {key: path.read_bytes() for key, path in files.items()}, metadata=metadata
    )
    say(args, f"Put {len(files)} images in the bucket without events; backfilling them ...")
    result = pipeline.backfill(
        pipeline.outputs["InputPrefix"], max_concurrency=args.max_concurrency, timeout=args.timeout
    )
    if result.status != "SUCCEEDED":
        raise CliError(f"the backfill ended {result.status}: {result.error}", EXIT_FAILED)
    say(args, "Backfill: " + ", ".join(f"{n} {name}" for name, n in result.counts.items()))
    return [SourceObject(bucket=pipeline.bucket, key=key) for key in files]


def run_local_burst(
    args: argparse.Namespace,
    *,
    pipeline: Any,
    images: Sequence[Path],
    prompt: str,
    options: Mapping[str, Any],
    metadata: Mapping[str, str],
    out_dir: Path,
    log_file: Path,
) -> int:
    """Upload every image at once to one stack, follow them all, one summary at the end."""
    folders = result_folders(images)
    prefix = pipeline.outputs["InputPrefix"]
    started = time.monotonic()
    if args.backfill:
        sources = backfill_existing(
            args,
            pipeline,
            {f"{prefix}{f}{i.suffix.lower()}": i for i, f in zip(images, folders, strict=True)},
            user_metadata_for(prompt, options, metadata),
        )
    else:
        sources = [
            pipeline.upload(
                image,
                key=f"{prefix}{folder}{image.suffix.lower()}",
                prompt=prompt,
                options=options,
                metadata=metadata,
            )
            for image, folder in zip(images, folders, strict=True)
        ]
        say(args, f"Uploaded {len(sources)} images with prompt {_short(prompt)!r} {options or ''}")
    by_key = {source.key: index for index, source in enumerate(sources)}
    finished: dict[str, Any] = {}
    progress = BurstProgress(len(sources))
    # Bounded by --timeout; each turn reads what arrived and sleeps a little.
    while len(finished) < len(sources):
        elapsed = time.monotonic() - started
        if elapsed >= args.timeout:
            raise CliError(
                f"{len(sources) - len(finished)} of {len(sources)} images had no result within "
                f"--timeout {args.timeout:.0f} s; the local run was stopped and nothing is left "
                f"running (logs: {log_file})",
                EXIT_TIMEOUT,
            )
        for item in pipeline.notifications():
            key = item.notification.source.key
            if key in by_key and key not in finished:
                finished[key] = item
        progress.show(burst_counts(pipeline, finished, len(sources)), elapsed)
        time.sleep(0.5)
    seconds = time.monotonic() - started
    jobs: list[dict[str, Any]] = []
    for source, image, folder in zip(sources, images, folders, strict=True):
        received = finished[source.key]
        notification = received.notification
        files, report = _write_local_results(pipeline, received, out_dir / folder, image)
        job: dict[str, Any] = {
            "image": str(image),
            "key": source.key,
            "status": notification.status,
            "request_id": notification.request_id,
            "out": str(out_dir / folder),
            "files": [str(path) for path in files],
            "report": str(report),
        }
        if notification.failure:
            job["failure"] = notification.failure.model_dump(mode="json")
        jobs.append(job)
    succeeded = sum(1 for job in jobs if job["status"] == "SUCCEEDED")
    failed = [job for job in jobs if job["status"] != "SUCCEEDED"]
    document = {
        "images": len(jobs),
        "succeeded": succeeded,
        "failed": len(failed),
        "seconds": round(seconds, 2),
        "out": str(out_dir),
        "log_file": str(log_file),
        "jobs": jobs,
    }
    lines = [f"{succeeded} of {len(jobs)} images SUCCEEDED in {seconds:.1f} s"]
    lines += [
        f"  FAILED {Path(job['image']).name}: {job['failure']['reason']}: "
        f"{job['failure']['message']}"
        for job in failed
    ]
    lines.append(f"Results in {out_dir.resolve()}/<image name>/ (index.html in each)")
    lines.append(f"Logs of the emulated AWS: {log_file}")
    emit(args, document, "\n".join(lines))
    return EXIT_FAILED if failed else EXIT_OK


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _interruptible(printer: ProgressPrinter) -> Iterator[None]:
    """Ctrl-C raises at once and is remembered, so a handler that swallows it cannot hide it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        if not printer.interrupted.is_set():
            print("interrupted: stopping ...", file=sys.stderr, flush=True)  # heard at once
        printer.interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --- the emulator: its own options ------------------------------------------------------


def run_emulator(argv: Sequence[str]) -> int:
    from kontext_tools.emulator import main as emulator_main  # noqa: PLC0415

    return int(emulator_main(list(argv)))


# --- errors -----------------------------------------------------------------------------


def describe_aws_error(exc: Exception) -> str | None:  # noqa: PLR0911 - one branch per kind
    """One line that names the problem and the fix, for the botocore errors people meet."""
    from botocore import exceptions as boto  # noqa: PLC0415

    if isinstance(exc, boto.NoRegionError):
        return (
            "no AWS region configured: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
            "or run aws configure"
        )
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return (
            "no AWS credentials found: configure AWS credentials with aws configure "
            "(or aws sso login), or set AWS_PROFILE"
        )
    if isinstance(exc, boto.ProfileNotFound):
        return f"{exc}: check AWS_PROFILE, or run aws configure --profile <name>"
    if isinstance(exc, boto.TokenRetrievalError | boto.SSOTokenLoadError):
        return f"AWS SSO login expired ({exc}): run aws sso login"
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectTimeoutError):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "AWS")
        return (
            f"cannot reach {endpoint}: check the network connection "
            "(and HTTPS_PROXY / AWS_ENDPOINT_URL if you use them)"
        )
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", "")
        operation = exc.operation_name
        if code in {
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
        }:
            return (
                f"AWS refused the credentials ({code}): refresh them (aws sso login, aws configure)"
            )
        if "AccessDenied" in code or code == "AuthorizationError":
            return (
                f"not allowed to {operation}: {message} - use credentials with access to the stack"
            )
        return f"AWS {operation} failed: {code}: {message}"
    if isinstance(exc, boto.WaiterError):
        return f"AWS did not finish: {exc}"
    if isinstance(exc, boto.BotoCoreError):
        return f"AWS: {exc}"
    return None


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kontext-pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--version", action="version", version=f"kontext-pipeline {package_version()}"
        )
        return sub

    def deployed(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = command(name, help_text)
        sub.add_argument(
            "--stack", help=f"stack name (default: samconfig.toml, then {DEFAULT_STACK})"
        )
        sub.add_argument(
            "--region", help="AWS region (default: AWS_REGION, then your AWS configuration)"
        )
        sub.add_argument("--json", action="store_true", help="one JSON document on stdout")
        return sub

    edit = deployed("edit", "upload an image to a deployed stack and follow the job")
    edit.add_argument("image", help="image file to edit")
    add_option_arguments(edit)
    edit.add_argument("--key", help="object key (default: <InputPrefix><random>-<file name>)")
    edit.add_argument("--out", help="download the outputs and write index.html into this folder")
    edit.add_argument("--no-wait", action="store_true", help="upload and return")
    edit.add_argument("--timeout", type=float, default=1800.0, help="give up after (1800 s)")
    edit.set_defaults(run=run_edit)

    status = deployed("status", "show a job's state and history")
    status.add_argument("key", help="the uploaded object's key")
    status.set_defaults(run=run_status)

    results = deployed("results", "download a finished job's outputs, with index.html")
    results.add_argument("key", help="the uploaded object's key")
    results.add_argument("--out", default="results", help="folder (results)")
    results.set_defaults(run=run_results)

    jobs = deployed("jobs", "list recent jobs: key, status, reason, request id, time, cost")
    jobs.add_argument("--status", choices=EXECUTION_STATUSES, type=str.upper)
    jobs.add_argument("--since", help="only jobs started since: 30m, 2h, 1d or an ISO time")
    jobs.add_argument("--limit", type=int, default=20, help="at most this many, newest first (20)")
    jobs.set_defaults(run=run_jobs)

    redrive = deployed(
        "redrive", "replay the uploads the trigger failed on (its dead-letter queue)"
    )
    redrive.set_defaults(run=run_redrive)

    deployed(
        "put-key", "store the model's API key (FAL_KEY or asked for) in the stack's secret"
    ).set_defaults(run=run_put_key)
    teardown = deployed("teardown", "delete the stack, and the bucket unless --keep-bucket")
    teardown.add_argument("--keep-bucket", action="store_true")
    teardown.set_defaults(run=run_teardown)

    local = command("local", "run the whole pipeline on this machine (moto + model emulator)")
    local.add_argument(
        "--image",
        required=True,
        action="append",
        help="image file to upload, or a folder of them; repeat for a burst (results under "
        "--out/<image name>/)",
    )
    add_option_arguments(local)
    local.add_argument(
        "--out", default="demo-output", help="folder for outputs, index.html and logs (demo-output)"
    )
    local.add_argument(
        "--model-seconds", type=float, default=1.0, help="emulated model run time (1.0)"
    )
    local.add_argument(
        "--queue-seconds", type=float, default=0.3, help="emulated time in the queue (0.3)"
    )
    local.add_argument(
        "--concurrency",
        type=int,
        help="requests the emulated model runs at once, as fal limits them per key (2 for a "
        "new account); the rest wait in its queue (default: no limit)",
    )
    local.add_argument("--timeout", type=float, default=180.0, help="give up after (180 s)")
    local.add_argument(
        "--parameter-overrides",
        nargs="+",
        metavar="Name=Value",
        help="template parameters for the local stack, as sam deploy takes them",
    )
    local.add_argument("--json", action="store_true", help="one JSON document on stdout")
    add_scale_commands(deployed, local)
    local.set_defaults(run=run_local)

    # Listed for --help; its arguments go to the emulator's own parser (see main).
    command("emulator", "run the model-queue emulator alone (emulator --help for its options)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:
        return run_emulator(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except PipelineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = describe_aws_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


def entry_point() -> int:
    """The `kontext-pipeline` command.

    After Ctrl-C the command has already stopped everything it started; what is left is
    the interpreter freeing the emulated AWS's state object by object, about a second the
    person pressing Ctrl-C should not wait for, so the process ends without that teardown.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(entry_point())
