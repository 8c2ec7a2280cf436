"""`kontext-pipeline local --serve` as a person or another app uses it: a process that keeps
a local stack up, says where its intake is and which key to send, edits what it is sent
(the README's curl example, run as written), and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, readme_example


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Any]]:
    """`local --serve --json` running; its ready line, and the process."""
    out = tmp_path_factory.mktemp("serve")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kontext_tools.cli",
            "local",
            "--serve",
            "--json",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()  # the ready line, once the stack stands
        assert line, "local --serve ended before it was ready"
        yield json.loads(line), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_ready_line_names_the_intake_and_a_key_that_works(
    served: tuple[dict[str, Any], Any],
) -> None:
    # Given the ready line
    ready, _ = served
    # When its key calls its intake, and no key does
    with httpx.Client(base_url=ready["intake_url"], timeout=30) as http:
        keyed = http.get(
            "/v1/edits/ed_000000000000000000000000",
            headers={"Authorization": f"Bearer {ready['api_key']}"},
        )
        anonymous = http.get("/v1/edits/ed_000000000000000000000000")
    # Then the key is taken (no such edit) and the caller without one is refused
    assert (keyed.status_code, anonymous.status_code) == (404, 401)


def test_the_readmes_curl_example_edits_the_sample_image(
    served: tuple[dict[str, Any], Any], tmp_path: Path
) -> None:
    # Given the README's example, with the URL and key --serve printed (and the image
    # server on a port that is free here)
    ready, _ = served
    script = readme_example("HTTP intake", "bash").replace("8000", str(free_port()))
    environment = os.environ | {"INTAKE": ready["intake_url"], "KEY": ready["api_key"]}
    # When it runs as written
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
        check=False,
    )
    # Then it printed the edit's status and the links to its outputs
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["status"] == "succeeded"
    assert len(shown["outputs"]) == 1
    assert httpx.get(shown["outputs"][0], timeout=10).content[:3] == b"\xff\xd8\xff"


def test_edit_by_api_needs_no_aws_credentials(
    served: tuple[dict[str, Any], Any], tmp_path: Path
) -> None:
    # Given the intake's URL and key, and no AWS credentials at all
    ready, _ = served
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("AWS_")
    } | {"KONTEXT_API_KEY": ready["api_key"]}
    # When the sample image is edited with `edit --api`
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "kontext_tools.cli",
            "edit",
            str(ROOT / "samples" / "kitchen-table.jpg"),
            "--prompt",
            "Put a donut next to the flour.",
            "--num-images",
            "2",
            "--api",
            ready["intake_url"],
            "--out",
            str(tmp_path / "edited"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    # Then it succeeded, and the outputs and the manifest are in the folder
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == "succeeded"
    names = sorted(path.name for path in (tmp_path / "edited").iterdir())
    assert names == ["0.jpg", "1.jpg", "manifest.json"]


def test_ctrl_c_stops_it_cleanly_even_pressed_twice(served: tuple[dict[str, Any], Any]) -> None:
    # Given the running --serve
    _, process = served
    # When Ctrl-C comes, and again while it stops (a person who does not wait)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    # Then it takes the stack down whole and ends, with success
    assert process.wait(timeout=60) == 0
