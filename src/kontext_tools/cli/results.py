"""A job's results folder: the outputs, the input beside them and index.html to compare;
and what a local run writes them from (LocalCommandRun, shared by `local` and its burst)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kontext_pipeline.core.models import SourceObject

from kontext_tools.report import manifest_options, write_report

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from kontext_tools.deployed import JobProgress
    from kontext_tools.local.pipeline import LocalPipeline, ReceivedNotification


@dataclass(frozen=True)
class LocalCommandRun:
    """What one `kontext-pipeline local` works with: the pipeline stood up (LocalPipeline),
    and the folders its results and logs go to."""

    pipeline: LocalPipeline
    out_dir: Path
    log_file: Path
    callback_secret: str


@dataclass(frozen=True)
class ResultsFolder:
    """Where a finished job's results go (None: nowhere), and its input image when known."""

    out_dir: Path | None
    input_image: Path | None = None

    def with_input(self, s3: S3Client, source: SourceObject) -> ResultsFolder:
        """The input image fetched from the bucket when only its key is known."""
        if self.out_dir is None or self.input_image is not None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return replace(self, input_image=download_input(s3, source, self.out_dir))


def download_input(s3: S3Client, source: SourceObject, out_dir: Path) -> Path | None:
    """The job's input image, for the report (best effort: it may have been deleted)."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    target = out_dir / f"input{Path(source.key).suffix.lower()}"
    try:
        target.write_bytes(s3.get_object(Bucket=source.bucket, Key=source.key)["Body"].read())
    except ClientError:
        return None
    return target


def report_of_failure(
    out_dir: Path, progress: JobProgress, key: str, input_image: Path | None
) -> Path:
    """index.html for a job that failed: its reason and message beside the input."""
    job = {
        "status": progress.execution_status,
        "source": {"key": key},
        "prompt": progress.prompt,
        "execution": progress.execution_arn,
        "failure": {"reason": progress.cause, "message": progress.failure_message or ""},
    }
    return write_report(out_dir, job=job, input_image=input_image)


def report_from_manifest(out_dir: Path, input_image: Path | None, progress: JobProgress) -> Path:
    """index.html for a job that succeeded, from the manifest.json downloaded beside it."""
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    job = {**manifest, "status": "SUCCEEDED", "execution": progress.execution_arn}
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


def write_local_results(
    pipeline: LocalPipeline, received: ReceivedNotification, out_dir: Path, image: Path
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
