"""Output copy: peak memory and throughput of `outputs.copy_output` for 1, 10 and 50 MB.

Each size runs in a fresh Python process so peak RSS is its own. The image is served over
loopback by a small HTTP server streaming a PNG header plus padding (the copy only sniffs
the first bytes). Baselines: a plain streamed httpx download to a file; boto3's
upload_file of that file alone (what the S3 endpoint can take in); and the two together,
the common download-then-upload pattern.

S3 is moto running as a server in a process of its own (as S3 is remote from a Lambda),
so the worker's RSS is the copy's own: the download, the checks and the multipart upload.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug import Request, Response

from kontext_tools.loopback import LoopbackServer

if TYPE_CHECKING:
    import httpx
    from kontext_pipeline.storage.output_origins import OutputPolicy
    from types_boto3_s3.client import S3Client

MB = 1024 * 1024
SIZES_MB = (1, 10, 50)


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


class PeakSampler:
    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def serve(size: int) -> tuple[LoopbackServer, str]:
    """An output of `size` bytes (a PNG header, then zeros), streamed as a CDN sends it."""
    from tests.conftest import make_image

    header = make_image("PNG", (64, 64))

    def blocks(length: int) -> Iterator[bytes]:
        yield header
        block, left = b"\0" * (256 * 1024), length - len(header)
        while left > 0:
            yield block[: min(len(block), left)]
            left -= len(block)

    @Request.application  # type: ignore[arg-type]
    def output(request: Request) -> Response:
        length = 64 * 1024 if "warm" in request.path else size
        headers = {"Content-Length": str(length)}
        return Response(blocks(length), content_type="image/png", headers=headers)

    server = LoopbackServer.for_wsgi(output).start()
    return server, f"{server.base_url}/out.png"


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 as a separate process on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure_one(size_mb: int) -> dict[str, Any]:
    """Runs inside the worker process."""
    import httpx
    from kontext_pipeline.storage.output_origins import OutputPolicy

    size = size_mb * MB
    server, url = serve(size)
    policy = OutputPolicy(allowed_hosts=("127.0.0.1",), allow_http=True, max_bytes=200 * MB)
    timeout = httpx.Timeout(30.0, connect=2.0)
    with s3_server() as endpoint, httpx.Client(timeout=timeout) as http:
        s3 = bench_bucket(endpoint)
        copy = measured_copy(s3, http, url, policy)
        two_step = measured_two_step(s3, http, url)
    server.stop()
    return {
        "size_mb": size_mb,
        "copy_seconds": copy.seconds,
        "copy_mb_per_s": size_mb / copy.seconds,
        "plain_download_mb_per_s": size_mb / two_step.seconds,
        "throughput_ratio": two_step.seconds / copy.seconds,
        # What the emulated S3 takes in at best: the ceiling for any copy into it.
        "upload_only_mb_per_s": size_mb / two_step.upload_seconds,
        "ratio_to_upload_only": two_step.upload_seconds / copy.seconds,
        "two_step_mb_per_s": size_mb / (two_step.seconds + two_step.upload_seconds),
        "ratio_to_two_step": (two_step.seconds + two_step.upload_seconds) / copy.seconds,
        "copy_peak_extra_rss_mb": (copy.peak - copy.baseline) / MB,
        "plain_peak_extra_rss_mb": (two_step.peak - copy.baseline) / MB,
    }


@dataclass(frozen=True)
class Measured:
    """How long a transfer took, the process's RSS before it and at its peak; for the
    download-then-upload pattern `seconds` is the download and `upload_seconds` the upload."""

    seconds: float
    peak: int
    baseline: int = 0
    upload_seconds: float = 0.0


def bench_bucket(endpoint: str) -> S3Client:
    import boto3

    s3: S3Client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    s3.create_bucket(Bucket="bench-outputs")
    return s3


def measured_copy(s3: S3Client, http: httpx.Client, url: str, policy: OutputPolicy) -> Measured:
    """`copy_output` of the image, after one warm-up so imports and pools are not measured."""
    from kontext_pipeline.storage.output_copy import OutputPlace, copy_output

    # Warm both paths once with a small file so imports and pools are not measured.
    warm = OutputPlace(bucket="bench-outputs", key_stem="warm", lineage={})
    copy_output(s3, http, url.replace("out", "warm"), warm, policy)
    s3.delete_object(Bucket="bench-outputs", Key="warm.png")
    baseline = rss_bytes()
    with PeakSampler() as sampler:
        started = time.perf_counter()
        place = OutputPlace(bucket="bench-outputs", key_stem="out", lineage={})
        copy_output(s3, http, url, place, policy)
        seconds = time.perf_counter() - started
    return Measured(seconds, sampler.peak, baseline)


def measured_two_step(s3: S3Client, http: httpx.Client, url: str) -> Measured:
    """The plain streamed download to a file, then boto3's upload_file of that file."""
    with tempfile.TemporaryDirectory() as folder, PeakSampler() as sampler:
        started = time.perf_counter()
        with http.stream("GET", url) as response, open(Path(folder) / "out", "wb") as sink:
            for chunk in response.iter_bytes(1024 * 1024):
                sink.write(chunk)
        plain_seconds = time.perf_counter() - started
        # The common pattern: download to a file, then upload the file.
        started = time.perf_counter()
        s3.upload_file(str(Path(folder) / "out"), "bench-outputs", "two-step.png")
        upload_seconds = time.perf_counter() - started
    return Measured(plain_seconds, sampler.peak, upload_seconds=upload_seconds)


def output_copy(quick: bool) -> dict[str, Any]:
    rows = []
    for size_mb in SIZES_MB:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.output_copy", str(size_mb)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        row = json.loads(completed.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"  {size_mb:3d} MB: streamed copy {row['copy_mb_per_s']:.0f} MB/s; download to "
            f"file {row['plain_download_mb_per_s']:.0f} MB/s (ratio "
            f"{row['throughput_ratio']:.2f}); upload alone {row['upload_only_mb_per_s']:.0f}"
            f" MB/s (ratio {row['ratio_to_upload_only']:.2f}); download-then-upload "
            f"{row['two_step_mb_per_s']:.0f} MB/s (ratio {row['ratio_to_two_step']:.2f}); "
            f"peak extra RSS {row['copy_peak_extra_rss_mb']:.1f} MB",
            flush=True,
        )
    return {"rows": rows}


if __name__ == "__main__":
    print(json.dumps(measure_one(int(sys.argv[1]))))
