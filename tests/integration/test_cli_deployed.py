"""The `kontext-pipeline` command against a deployed stack (here: the stack on moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kontext_tools.cli import main
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import ROOT

SAMPLE = str(ROOT / "samples" / "kitchen-table.jpg")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_edit_uploads_follows_and_downloads(
    pipeline: LocalPipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployed stack
    stack = pipeline.stack.name  # type: ignore[union-attr]
    # When an image is edited through the command, for a script
    code, out, err = run_cli(
        capsys,
        "edit",
        SAMPLE,
        "--prompt",
        "make it snow",
        "--stack",
        stack,
        "--num-images",
        "2",
        "--key",
        "inputs/cli/table.jpg",
        "--out",
        str(tmp_path),
        "--json",
    )
    # Then it succeeds, reports the outputs and downloads them, showing progress on stderr
    assert code == 0, err
    document = json.loads(out)
    assert document["status"] == "SUCCEEDED"
    assert len(document["outputs"]) == 2
    assert sorted(Path(path).name for path in document["files"]) == [
        "0.jpg",
        "1.jpg",
        "manifest.json",
    ]
    assert "state SubmitEdit" in err or "state WaitForModel" in err

    # And status and results find the same job by its key
    code, out, _ = run_cli(capsys, "status", "inputs/cli/table.jpg", "--stack", stack, "--json")
    status = json.loads(out)
    assert (code, status["status"]) == (0, "SUCCEEDED")
    assert [item["state"] for item in status["history"]][:2] == ["SubmitEdit", "ChooseCompletion"]
    again = tmp_path / "again"
    code, out, _ = run_cli(
        capsys, "results", "inputs/cli/table.jpg", "--stack", stack, "--out", str(again)
    )
    assert code == 0
    assert (again / "manifest.json").is_file()


def test_a_failed_job_exits_1_with_the_reason(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "edit",
        SAMPLE,
        "--prompt",
        "x [fault:model-error]",
        "--stack",
        pipeline.stack.name,  # type: ignore[union-attr]
        "--key",
        "inputs/cli/broken.jpg",
        "--json",
    )
    document = json.loads(out)
    assert code == 1
    assert document["status"] == "FAILED"
    assert document["error"] == "ModelRequestFailedError"


def test_invalid_options_are_refused_before_upload(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "edit",
        SAMPLE,
        "--prompt",
        "x",
        "--num-images",
        "9",
        "--stack",
        pipeline.stack.name,  # type: ignore[union-attr]
        "--key",
        "inputs/cli/never.jpg",
    )
    assert code == 2
    assert "num-images=9" in err
    listing = pipeline.client("s3").list_objects_v2(
        Bucket=pipeline.bucket, Prefix="inputs/cli/never"
    )
    assert "Contents" not in listing


def test_an_unknown_stack_is_named(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "status", "inputs/x.jpg", "--stack", "no-such-stack")
    assert code == 2
    assert "stack 'no-such-stack' not found" in err


def test_put_key_stores_the_key_in_the_stacks_secret(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", "fal-new-key")
    code, _, _ = run_cli(capsys, "put-key", "--stack", pipeline.stack.name)  # type: ignore[union-attr]
    secret = pipeline.client("secretsmanager").get_secret_value(
        SecretId=pipeline.outputs["FalApiKeySecretArn"]
    )
    assert (code, secret["SecretString"]) == (0, "fal-new-key")
