"""`kontext-pipeline emulator` (and `python -m kontext_tools.emulator`): the emulator on
127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse
import time

from kontext_tools.emulator.server import FalQueueEmulator
from kontext_tools.emulator.timing import EmulatorTiming


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kontext-pipeline emulator", description="fal queue emulator on 127.0.0.1"
    )
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--queue-seconds", type=float, default=0.5)
    parser.add_argument("--run-seconds", type=float, default=3.0)
    parser.add_argument(
        "--run-spread", type=float, default=0.0, help="run time varies by ± this fraction"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="requests run at once per key, as fal limits them (2 for a new account); the "
        "rest wait IN_QUEUE in order (default: no limit)",
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--webhook-time-scale",
        type=float,
        default=0.001,
        help="fal retries a webhook 10 times over 2 hours; this factor scales that schedule "
        "(1 = real time; the default 0.001 spans 7.2 s)",
    )
    return parser


# The options that are the timing's fields (each named as its field).
TIMING_OPTIONS = ("queue_seconds", "run_seconds", "run_spread", "concurrency", "webhook_time_scale")


def timing_from(args: argparse.Namespace) -> EmulatorTiming:
    return EmulatorTiming(**{name: getattr(args, name) for name in TIMING_OPTIONS})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    emulator = FalQueueEmulator(port=args.port, api_key=args.api_key, timing=timing_from(args))
    with emulator:
        print(f"fal queue emulator on {emulator.base_url} (model {emulator.model_path})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
