"""Shared fixtures: sample events by name, test images, moto-backed AWS clients."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

# No test may reach real AWS: moto answers everything, with fake credentials.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ[_name] = "testing"
os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"


def load_event(name: str) -> Any:
    """A sample event from events/, by file name without .json."""
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def make_image(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: str = "orange") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto in-process; yields a boto3 session."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.Session(region_name="us-east-1")
