"""`local` with several images (a burst) or `local --backfill`: every image to one local
stack at once, all followed together, one summary at the end."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.storage.metadata import user_metadata_for

from kontext_tools.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from kontext_tools.cli.output import BurstProgress, emit, say, short
from kontext_tools.cli.results import write_local_results

if TYPE_CHECKING:
    from kontext_tools.cli.arguments import EditRequest
    from kontext_tools.cli.results import LocalCommandRun
    from kontext_tools.local.pipeline import LocalPipeline, ReceivedNotification


def run_local_burst(
    args: argparse.Namespace, run: LocalCommandRun, request: EditRequest, images: Sequence[Path]
) -> int:
    """Upload every image at once to one stack, follow them all, one summary at the end."""
    folders = result_folders(images)
    prefix = run.pipeline.outputs["InputPrefix"]
    keys = [
        f"{prefix}{folder}{image.suffix.lower()}"
        for image, folder in zip(images, folders, strict=True)
    ]
    started = time.monotonic()
    if args.backfill:
        sources = backfill_existing(
            args, run.pipeline, dict(zip(keys, images, strict=True)), request
        )
    else:
        sources = [
            run.pipeline.upload(
                image,
                key=key,
                prompt=request.prompt,
                options=request.options,
                metadata=request.metadata,
            )
            for image, key in zip(images, keys, strict=True)
        ]
        prompt, options = short(request.prompt), request.options or ""
        say(args, f"Uploaded {len(sources)} images with prompt {prompt!r} {options}")
    finished = _wait_for_all(args, run, sources, started)
    seconds = time.monotonic() - started
    jobs = [
        _job_results(run, finished[source.key], image, folder)
        for source, image, folder in zip(sources, images, folders, strict=True)
    ]
    return _summary(args, run, jobs, seconds)


def result_folders(images: Sequence[Path]) -> list[str]:
    """One folder name per image, its name without the suffix; repeats get -2, -3, ..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for image in images:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", image.stem).strip("-.") or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def backfill_existing(
    args: argparse.Namespace,
    pipeline: LocalPipeline,
    files: Mapping[str, Path],
    request: EditRequest,
) -> list[SourceObject]:
    """`local --backfill`: the images are put in the bucket as if they had been there
    before the stack (no event reaches the trigger), then the stack's backfill edits them."""
    pipeline.put_existing(
        {key: path.read_bytes() for key, path in files.items()},
        metadata=user_metadata_for(request.prompt, request.options, request.metadata),
    )
    say(args, f"Put {len(files)} images in the bucket without events; backfilling them ...")
    result = pipeline.backfill(
        pipeline.outputs["InputPrefix"], max_concurrency=args.max_concurrency, timeout=args.timeout
    )
    if result.status != "SUCCEEDED":
        raise CliError(f"the backfill ended {result.status}: {result.error}", EXIT_FAILED)
    say(args, "Backfill: " + ", ".join(f"{n} {name}" for name, n in result.counts.items()))
    return [SourceObject(bucket=pipeline.bucket, key=key) for key in files]


def _wait_for_all(
    args: argparse.Namespace, run: LocalCommandRun, sources: Sequence[SourceObject], started: float
) -> dict[str, ReceivedNotification]:
    """Each source's notification, by key; bounded by --timeout, each turn reads what
    arrived and sleeps a little."""
    wanted = {source.key for source in sources}
    finished: dict[str, ReceivedNotification] = {}
    progress = BurstProgress(len(sources))
    while len(finished) < len(sources):
        elapsed = time.monotonic() - started
        if elapsed >= args.timeout:
            raise CliError(
                f"{len(sources) - len(finished)} of {len(sources)} images had no result within "
                f"--timeout {args.timeout:.0f} s; the local run was stopped and nothing is left "
                f"running (logs: {run.log_file})",
                EXIT_TIMEOUT,
            )
        for item in run.pipeline.notifications():
            key = item.notification.source.key
            if key in wanted and key not in finished:
                finished[key] = item
        progress.show(burst_counts(run.pipeline, finished, len(sources)), elapsed)
        time.sleep(0.5)
    return finished


def burst_counts(
    pipeline: LocalPipeline, finished: Mapping[str, ReceivedNotification], total: int
) -> dict[str, int]:
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


def _job_results(
    run: LocalCommandRun, received: ReceivedNotification, image: Path, folder: str
) -> dict[str, Any]:
    """One image's results written into its folder, and its entry in the summary."""
    notification = received.notification
    files, report = write_local_results(run.pipeline, received, run.out_dir / folder, image)
    job: dict[str, Any] = {
        "image": str(image),
        "key": notification.source.key,
        "status": notification.status,
        "request_id": notification.request_id,
        "out": str(run.out_dir / folder),
        "files": [str(path) for path in files],
        "report": str(report),
    }
    if notification.failure:
        job["failure"] = notification.failure.model_dump(mode="json")
    return job


def _summary(
    args: argparse.Namespace, run: LocalCommandRun, jobs: list[dict[str, Any]], seconds: float
) -> int:
    succeeded = sum(1 for job in jobs if job["status"] == "SUCCEEDED")
    failed = [job for job in jobs if job["status"] != "SUCCEEDED"]
    document = {
        "images": len(jobs),
        "succeeded": succeeded,
        "failed": len(failed),
        "seconds": round(seconds, 2),
        "out": str(run.out_dir),
        "log_file": str(run.log_file),
        "callback_secret": run.callback_secret,
        "jobs": jobs,
    }
    lines = [f"{succeeded} of {len(jobs)} images SUCCEEDED in {seconds:.1f} s"]
    lines += [
        f"  FAILED {Path(job['image']).name}: {job['failure']['reason']}: "
        f"{job['failure']['message']}"
        for job in failed
    ]
    lines.append(f"Results in {run.out_dir.resolve()}/<image name>/ (index.html in each)")
    lines.append(f"Logs of the emulated AWS: {run.log_file}")
    emit(args, document, "\n".join(lines))
    return EXIT_FAILED if failed else EXIT_OK
