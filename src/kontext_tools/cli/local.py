"""`local`: the whole pipeline on this machine (moto and the model emulator), one image at
a time here, several at once in `burst`; no AWS account needed."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kontext_tools.cli.arguments import (
    TEMPLATE_PATH,
    EditRequest,
    checked_edit_request,
    checked_images,
    checked_out_dir,
    parse_parameter_overrides,
)
from kontext_tools.cli.burst import run_local_burst
from kontext_tools.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TIMEOUT, CliError
from kontext_tools.cli.output import ProgressPrinter, emit, say, short
from kontext_tools.cli.results import LocalCommandRun, write_local_results
from kontext_tools.deployed import JobProgress, prompt_goes_to_sidecar, sidecar_key_for

if TYPE_CHECKING:
    from kontext_tools.local.pipeline import LocalPipeline, ReceivedNotification

LOCAL_LOG_NAME = "local-run.log"


def run_local(args: argparse.Namespace) -> int:
    if not args.image or args.prompt is None:
        raise CliError("local needs --image (a file or folder) and --prompt, or --serve")
    images = checked_images(args.image)
    request = checked_edit_request(args)
    if args.concurrency is not None and args.concurrency < 1:
        raise CliError("--concurrency takes 1 or more (requests the emulated model runs at once)")
    out_dir, overrides, fal_base_url, log_file = local_run_setup(args)
    target = fal_base_url or "the local model emulator"
    say(args, f"Standing up the pipeline on local AWS emulation (model queue: {target}) ...")
    printer = ProgressPrinter()
    with (
        stood_up_or_refused(log_file),
        interruptible(printer),
        local_pipeline(args, overrides, fal_base_url, log_file) as pipeline,
    ):
        run = LocalCommandRun(pipeline, out_dir, log_file, _callback_secret(args, pipeline))
        if len(images) > 1 or args.backfill:
            code = run_local_burst(args, run, request, images)
        else:
            code = _run_one(args, run, request, images[0], printer)
        _settle(args, pipeline)
        return code


def local_run_setup(args: argparse.Namespace) -> tuple[Path, dict[str, str], str | None, Path]:
    """--out (made), the template overrides, the model queue's URL (FalBaseUrl, else
    $FAL_BASE_URL, else None: the emulator) and the run's log file, emptied."""
    out_dir = checked_out_dir(args.out)
    assert out_dir is not None  # --out has a default
    overrides = parse_parameter_overrides(args.parameter_overrides or [], TEMPLATE_PATH)
    fal_base_url = overrides.pop("FalBaseUrl", None) or os.environ.get("FAL_BASE_URL") or None
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = out_dir / LOCAL_LOG_NAME
    log_file.write_text("", encoding="utf-8")
    return out_dir, overrides, fal_base_url, log_file


def _callback_secret(args: argparse.Namespace, pipeline: LocalPipeline) -> str:
    """The secret that signs the run's callbacks, as receivers configure it (whsec_...):
    --callback-secret's, put in the stack's place so a receiver set up beforehand verifies
    them, else the stack's own, printed for the receivers of this run."""
    from kontext_pipeline.core.errors import ConfigurationError  # noqa: PLC0415
    from kontext_pipeline.notifications.callbacks.signing import (  # noqa: PLC0415 - local extras
        SECRET_PREFIX,
        displayed_secret,
        signing_key,
    )

    secret_arn = pipeline.outputs["CallbackSigningSecretArn"]
    secrets = pipeline.clients.secretsmanager
    if args.callback_secret is not None:
        try:
            signing_key(args.callback_secret)
        except ConfigurationError as exc:
            raise CliError(
                f"--callback-secret: {exc.message} (Standard Webhooks: whsec_<base64>)"
            ) from None
        raw = args.callback_secret.strip().removeprefix(SECRET_PREFIX)
        secrets.put_secret_value(SecretId=secret_arn, SecretString=raw)
    secret = displayed_secret(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    say(args, f"Per-job callbacks are signed with {secret}")
    return secret


def _settle(args: argparse.Namespace, pipeline: LocalPipeline) -> None:
    """Stop only once the work the jobs started (callbacks and their retries) is done."""
    cut_short = pipeline.settle()
    if cut_short:
        say(args, f"Stopping the local run cuts short: {', '.join(cut_short)}")


def local_pipeline(
    args: argparse.Namespace, parameters: dict[str, str], fal_base_url: str | None, log_file: Path
) -> LocalPipeline:
    from kontext_tools.emulator import EmulatorTiming  # noqa: PLC0415 - local extras
    from kontext_tools.local.pipeline import LocalPipeline  # noqa: PLC0415

    return LocalPipeline(
        fal_base_url=fal_base_url,
        fal_key=os.environ.get("FAL_KEY") or None,
        emulator_timing=EmulatorTiming(
            queue_seconds=args.queue_seconds,
            run_seconds=args.model_seconds,
            concurrency=args.concurrency,
        ),
        parameters=parameters,
        log_file=log_file,
    )


@contextmanager
def stood_up_or_refused(log_file: Path) -> Iterator[None]:
    """A stack that cannot be built or read, and Ctrl-C, as one line and an exit code."""
    from kontext_tools.local.build import BuildError  # noqa: PLC0415 - local extras
    from kontext_tools.local.stack import TemplateError  # noqa: PLC0415

    try:
        yield
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


@contextmanager
def interruptible(printer: ProgressPrinter) -> Iterator[None]:
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


def _run_one(
    args: argparse.Namespace,
    run: LocalCommandRun,
    request: EditRequest,
    image: Path,
    printer: ProgressPrinter,
) -> int:
    prompt, options = request.prompt, request.options
    uploaded_at = time.time()
    source = run.pipeline.upload(image, prompt=prompt, options=options, metadata=request.metadata)
    if prompt_goes_to_sidecar(prompt, options):
        say(args, f"Prompt too long for S3 metadata: put {sidecar_key_for(source.key)}")
    say(args, f"Uploaded {source.s3_uri} with prompt {short(prompt)!r} {options or ''}")
    started = time.monotonic()
    try:
        received = run.pipeline.wait_for_notification(
            source, timeout=args.timeout, on_progress=NotificationWatch(printer, run.log_file)
        )
    except TimeoutError:
        raise CliError(
            f"no result within --timeout {args.timeout:.0f} s; the local run was stopped "
            f"and nothing is left running (logs: {run.log_file})",
            EXIT_TIMEOUT,
        ) from None
    return _finish_local(args, run, received, image, (started, uploaded_at))


def _finish_local(
    args: argparse.Namespace,
    run: LocalCommandRun,
    received: ReceivedNotification,
    image: Path,
    started: tuple[float, float],
) -> int:
    notification = received.notification
    seconds = time.monotonic() - started[0]
    document: dict[str, Any] = {
        "status": notification.status,
        "key": notification.source.key,
        "request_id": notification.request_id,
        "seconds": round(seconds, 2),
        "notification": notification.model_dump(mode="json"),
        "log_file": str(run.log_file),
        "callback_secret": run.callback_secret,
    }
    files, report = write_local_results(run.pipeline, received, run.out_dir, image)
    document.update(files=[str(path) for path in files], report=str(report))
    published = received.published_at - started[1]
    timing = _model_and_overhead(run.pipeline, notification.request_id, published)
    document.update(timing)
    if notification.status == "FAILED" and notification.failure:
        failure = notification.failure
        document["failure"] = failure.model_dump(mode="json")
        emit(
            args,
            document,
            f"FAILED after {seconds:.1f} s: {failure.reason}: {failure.message}\n"
            f"Report: {report}\nLogs of the emulated AWS: {run.log_file}",
        )
        return EXIT_FAILED
    emit(args, document, _succeeded_text(run, received, files, report, (seconds, timing)))
    return EXIT_OK


def _model_and_overhead(
    pipeline: LocalPipeline, request_id: str | None, seconds: float
) -> dict[str, float]:
    """How long the emulated model held the request (queue and run, by its own clock), and
    what the pipeline added around it: upload to the notification's publish (`seconds`),
    less that hold. Unknown against a real model queue, whose clock is not ours."""
    emulator = pipeline.emulator
    if emulator is None or request_id is None:
        return {}
    request = emulator.get(request_id)
    if request.completed_at is None:
        return {}
    held = request.completed_at - request.submitted_at
    return {"model_seconds": round(held, 2), "overhead_seconds": round(seconds - held, 2)}


def _succeeded_text(
    run: LocalCommandRun,
    received: ReceivedNotification,
    files: list[Path],
    report: Path,
    times: tuple[float, dict[str, float]],
) -> str:
    notification = received.notification
    seconds, timing = times
    lines = [f"SUCCEEDED in {seconds:.1f} s (request {notification.request_id})"]
    if timing:
        lines.append(
            f"  the model held the request {timing['model_seconds']:.1f} s; the pipeline "
            f"added {timing['overhead_seconds']:.2f} s (upload to notification, less that)"
        )
    lines += [
        f"  {output.s3_uri}  {output.width}x{output.height}  {output.size} bytes"
        for output in notification.outputs
    ]
    lines.append(f"Results in {run.out_dir.resolve()}/:")
    lines += [f"  {path.name}" for path in [*files, run.out_dir / "notification.json", report]]
    lines.append(f"Open {report} to compare the input and the outputs.")
    lines.append(f"Logs of the emulated AWS: {run.log_file}")
    return "\n".join(lines)
