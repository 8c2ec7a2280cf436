"""What the command prints: the result (text, or one JSON document with --json) on stdout,
progress on stderr while it waits."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from kontext_tools.deployed import JobProgress

HEARTBEAT_SECONDS = 10.0


def emit(args: argparse.Namespace, document: Mapping[str, Any], text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def say(args: argparse.Namespace, text: str) -> None:
    """Human-readable lines: stdout, unless stdout is for the JSON document."""
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
