"""Run the benchmarks and print what they measured.

    python -m benchmarks.run           # 20 jobs a mode, 5 s and 30 s models, 500-upload burst
    python -m benchmarks.run --quick   # 5 jobs a mode, 5 s model, 60-upload burst
    python -m benchmarks.run --only overhead
    python -m benchmarks.run --save    # keep the figures, and write them into the README

Only with --save does a run write benchmarks/results/<name>.json (with the machine and
date it ran on) and benchmarks/results/latest.json (the newest of each), and regenerate
the README's Performance section from it (benchmarks/readme.py): the README quotes a
saved run, and a run to try something out never overwrites it. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import readme
from benchmarks.burst import burst
from benchmarks.cold_start import cold_start
from benchmarks.first_job import first_job
from benchmarks.output_copy import output_copy
from benchmarks.overhead import overhead

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "first_job": first_job,
    "overhead": overhead,
    "output_copy": output_copy,
    "burst": burst,
    "cold_start": cold_start,
}


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, a few minutes")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument(
        "--save", action="store_true", help="write the figures to benchmarks/results/"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    host = machine()
    print(
        f"Machine: {host['cpus']} CPUs, {host['cpu']}, "
        f"Python {host['python']}{' (quick mode)' if args.quick else ''}"
    )
    for name in args.only or BENCHMARKS:
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        result = BENCHMARKS[name](args.quick)
        result["seconds"] = time.monotonic() - started
        result["quick"] = args.quick
        result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result["machine"] = host
        if args.save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    if not args.save:
        print("\nNot saved (add --save to write benchmarks/results/)")
        return 0
    # The newest result of every benchmark, so a run with --only keeps the others.
    latest = {
        name: json.loads((RESULTS / f"{name}.json").read_text())
        for name in BENCHMARKS
        if (RESULTS / f"{name}.json").exists()
    }
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2, default=str))
    readme.write(readme.README, readme.render(latest))
    print(f"\nWritten to {RESULTS}/ and the README's Performance section")
    return 0


if __name__ == "__main__":
    sys.exit(main())
