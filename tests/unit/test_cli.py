"""The command's own checks, before anything reaches AWS."""

from __future__ import annotations

import pytest

from kontext_tools.cli import main
from kontext_tools.deployed import stack_name_from_samconfig
from tests.conftest import ROOT


def test_missing_credentials_get_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no credentials anywhere (and no instance metadata to ask)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # When a deployed-stack command runs / Then it says how to fix it, with exit code 2
    assert main(["status", "inputs/x.jpg", "--stack", "s", "--region", "us-east-1"]) == 2
    assert "configure AWS credentials" in capsys.readouterr().err


def test_a_missing_image_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edit", "/nonexistent.jpg", "--prompt", "x", "--stack", "s"]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_option_values_are_checked_by_the_pipelines_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "edit",
                str(ROOT / "samples" / "kitchen-table.jpg"),
                "--prompt",
                "x",
                "--guidance-scale",
                "50",
                "--stack",
                "s",
            ]
        )
        == 2
    )
    assert "guidance-scale=50.0" in capsys.readouterr().err


def test_the_stack_name_comes_from_samconfig() -> None:
    assert stack_name_from_samconfig(ROOT / "samconfig.toml") == "kontext-pipeline"
