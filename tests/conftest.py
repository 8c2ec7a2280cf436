"""Shared fixtures: sample events by name, test images, moto-backed AWS clients."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

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


def data_uri(image: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(image).decode()


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver's receivers listen on 127.0.0.1 (not `localhost`, which may resolve
    to ::1), the address the tests' callback and download rules let through; any free port."""
    return ("127.0.0.1", 0)


def base_url_of(server: HTTPServer) -> str:
    """http://127.0.0.1:<port>, with no trailing slash."""
    return f"http://{server.host}:{server.port}"


def received(server: HTTPServer) -> list[tuple[dict[str, str], bytes]]:
    """What the server was sent, in order: each request's headers (names in lower case, as
    the Standard Webhooks and fal's verifiers look them up) and body."""
    return [
        ({name.lower(): value for name, value in request.headers.items()}, request.get_data())
        for request, _ in server.log
    ]


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto in-process; yields a boto3 session."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


JOBS_TABLE = "jobs"


@pytest.fixture
def jobs_table(aws: Any) -> Any:
    """A DynamoDB client with the jobs table as template.yaml declares it (key `pk`)."""
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName=JOBS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    return dynamodb


def kontext(*argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`kontext-pipeline ARGV...` as a process of its own, as a person runs it."""
    return subprocess.run(
        [sys.executable, "-m", "kontext_tools.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ.copy(),
    )


def local_run(
    *argv: str, out: Path, model_seconds: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`kontext-pipeline local ARGV... --json` on the emulator (queued 0.1 s, running
    `model_seconds`), results in `out`; the finished run and its JSON summary."""
    result = kontext(
        "local",
        *argv,
        "--model-seconds",
        str(model_seconds),
        "--queue-seconds",
        "0.1",
        "--out",
        str(out),
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout)


def readme_example(section: str, language: str) -> str:
    """The one `language` code block of the README's `## section`, as it is written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = readme[readme.index(f"## {section}") :].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 1, f"the {section} section has one {language} example"
    return str(blocks[0])
