"""Cold start: import time of each handler module, against `import boto3` alone.

Measured on what ships: each built function folder (`sam build` for this machine), the
built layer and the runtime's boto3, in a bare interpreter of the runtime's version
(`python3.12 -I -S -B`, as the local run starts a sandbox: the bytecode the build ships is
read, none is written). Each measurement is a fresh
interpreter (what a Lambda cold start pays), repeated; the median is reported. The
environment carries what the settings need at import.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path
from typing import Any

from kontext_tools.local.build import RUNTIME_FLAGS, BuildArtifacts, ensure_built

ROOT = Path(__file__).resolve().parents[1]
TIMER = (
    "import sys, time; sys.path[:0] = {path!r}; started = time.perf_counter(); "
    "import {module}; print(time.perf_counter() - started)"
)


# The packages a handler pulls in, to say where its import time goes.
HEAVY_PACKAGES = (
    "boto3",
    "aws_lambda_powertools",
    "httpx",
    "pydantic",
    "kontext_pipeline",
)


def _environment() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:edit",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:jobs",
        "JOBS_TABLE": "jobs",
    }


def _run(artifacts: BuildArtifacts, code: str, function_dir: Path | None, *flags: str) -> Any:
    return subprocess.run(
        [str(artifacts.python), *RUNTIME_FLAGS, *flags, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=function_dir or ROOT,
        timeout=120,
    )


def _import_seconds(
    artifacts: BuildArtifacts, module: str, function_dir: Path | None, repeats: int
) -> float:
    code = TIMER.format(module=module, path=artifacts.import_path(function_dir))
    samples = [
        float(_run(artifacts, code, function_dir).stdout.strip().splitlines()[-1])
        for _ in range(repeats)
    ]
    return statistics.median(samples)


def import_breakdown(artifacts: BuildArtifacts, function_dir: Path) -> dict[str, float]:
    """Milliseconds of the slowest import of each heavy package (`python -X importtime`),
    inclusive of what it imports in turn, so the figures overlap."""
    code = f"import sys; sys.path[:0] = {artifacts.import_path(function_dir)!r}; import app"
    completed = _run(artifacts, code, function_dir, "-X", "importtime")
    breakdown = dict.fromkeys(HEAVY_PACKAGES, 0.0)
    for line in completed.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        name = fields[2].strip()
        package = name.split(".", 1)[0]
        if package in breakdown:
            breakdown[package] = max(breakdown[package], int(fields[1]) / 1000)
    return breakdown


def cold_start(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 7
    artifacts = ensure_built()
    functions = sorted(
        path for path in artifacts.build_dir.iterdir() if (path / "app.py").is_file()
    )
    boto3_seconds = _import_seconds(artifacts, "boto3", None, repeats)
    print(f"  import boto3 alone: {boto3_seconds * 1000:.0f} ms", flush=True)
    rows = []
    for function_dir in functions:
        name = function_dir.name
        seconds = _import_seconds(artifacts, "app", function_dir, repeats)
        rows.append(
            {
                "function": name,
                "import_ms": seconds * 1000,
                "ratio_to_boto3": seconds / boto3_seconds,
            }
        )
        print(
            f"  {name:16} {seconds * 1000:5.0f} ms  ({seconds / boto3_seconds:.2f}x boto3)",
            flush=True,
        )
    # One handler is enough to see where the time goes: they share the layer's imports.
    breakdown = import_breakdown(artifacts, artifacts.build_dir / "StartEditFunction")
    print(
        "  StartEditFunction's imports (inclusive, overlapping): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in breakdown.items()),
        flush=True,
    )
    return {"boto3_import_ms": boto3_seconds * 1000, "rows": rows, "breakdown_ms": breakdown}
