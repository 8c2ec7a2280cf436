"""Cold start: import time of each handler module, against `import boto3` alone.

Each measurement is a fresh interpreter (what a Lambda cold start pays), repeated; the
median is reported. The environment carries what the settings need at import.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = sorted(path.name for path in (ROOT / "functions").iterdir() if path.is_dir())
TIMER = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


# The packages a handler pulls in, to say where its import time goes.
HEAVY_PACKAGES = (
    "boto3",
    "aws_xray_sdk",
    "aws_lambda_powertools",
    "httpx",
    "pydantic_settings",
    "pydantic",
    "kontext_pipeline",
)


def _environment(function_dir: Path | None) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "layers" / "common" / "python")]
            + ([str(function_dir)] if function_dir else [])
        ),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:edit",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:jobs",
        "JOBS_TABLE": "jobs",
    }


def _import_seconds(module: str, function_dir: Path | None, repeats: int) -> float:
    environment = _environment(function_dir)
    samples = []
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, "-c", TIMER.format(module=module)],
            check=True,
            capture_output=True,
            text=True,
            env=environment,
            cwd=function_dir or ROOT,
            timeout=120,
        )
        samples.append(float(completed.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def import_breakdown(function_dir: Path) -> dict[str, float]:
    """Milliseconds of the slowest import of each heavy package (`python -X importtime`),
    inclusive of what it imports in turn, so the figures overlap."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        check=True,
        capture_output=True,
        text=True,
        env=_environment(function_dir),
        cwd=function_dir,
        timeout=120,
    )
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
    boto3_seconds = _import_seconds("boto3", None, repeats)
    print(f"  import boto3 alone: {boto3_seconds * 1000:.0f} ms", flush=True)
    rows = []
    for name in FUNCTIONS:
        seconds = _import_seconds("app", ROOT / "functions" / name, repeats)
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
    breakdown = import_breakdown(ROOT / "functions" / "start_edit")
    print(
        "  start_edit's imports (inclusive, overlapping): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in breakdown.items()),
        flush=True,
    )
    return {"boto3_import_ms": boto3_seconds * 1000, "rows": rows, "breakdown_ms": breakdown}
