"""One local deployment per test module: template.yaml on moto, handlers in-process,
the real state machine, the model emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline

FAST_MODEL = EmulatorTiming(queue_seconds=0.1, run_seconds=0.3)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(emulator_timing=FAST_MODEL) as running:
        yield running
