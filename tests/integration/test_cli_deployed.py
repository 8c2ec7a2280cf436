"""The `kontext-pipeline` command against a deployed stack (here: the stack on moto)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
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


def run_edit(
    capsys: pytest.CaptureFixture[str], pipeline: LocalPipeline, key: str, *options: str
) -> tuple[int, str, str]:
    """`edit <the sample> --stack <the stack> --key KEY OPTIONS...`."""
    stack = pipeline.stack.name  # type: ignore[union-attr]
    return run_cli(capsys, "edit", SAMPLE, "--stack", stack, "--key", key, *options)


def press_ctrl_c_once_uploaded(pipeline: LocalPipeline, key: str) -> threading.Thread:
    """SIGINT to this process, as Ctrl-C sends it, once `key` is in the bucket."""

    def wait_then_interrupt() -> None:
        s3 = pipeline.clients.s3
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if s3.list_objects_v2(Bucket=pipeline.bucket, Prefix=key).get("KeyCount"):
                time.sleep(0.5)  # the command is following the job by now
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    presser = threading.Thread(target=wait_then_interrupt, daemon=True)
    presser.start()
    return presser


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
    # And index.html shows the input beside the outputs, by relative path
    page = (tmp_path / "index.html").read_text()
    for name in ("input.jpg", "0.jpg", "1.jpg"):
        assert f'src="{name}"' in page
    assert "make it snow" in page

    # And status and results find the same job by its key
    code, out, _ = run_cli(capsys, "status", "inputs/cli/table.jpg", "--stack", stack, "--json")
    status = json.loads(out)
    assert (code, status["status"]) == (0, "SUCCEEDED")
    states = [item["state"] for item in status["history"]][:3]
    assert states == ["SubmitEdit", "RouteByStatus", "WaitForModel"]
    again = tmp_path / "again"
    code, out, _ = run_cli(
        capsys, "results", "inputs/cli/table.jpg", "--stack", stack, "--out", str(again)
    )
    assert code == 0
    assert (again / "manifest.json").is_file()
    assert 'src="input.jpg"' in (again / "index.html").read_text()
    assert (again / "input.jpg").read_bytes() == Path(SAMPLE).read_bytes()


def test_a_job_that_outlasts_the_timeout_exits_3_and_goes_on(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a request the model keeps in its queue
    stack = pipeline.stack.name  # type: ignore[union-attr]
    key = "inputs/cli/stuck.jpg"
    argv = ["edit", SAMPLE, "--prompt", "x [fault:stuck-in-queue]", "--stack", stack, "--key", key]
    # When edit gives up after 2 s
    code, _, err = run_cli(capsys, *argv, "--timeout", "2")
    # Then it says the job goes on and how to follow it, with exit code 3
    assert code == 3
    assert f"the job goes on in the stack: kontext-pipeline status {key}" in err
    # And results of the running job is "not finished" (3), not "failed" (1)
    code, out, _ = run_cli(capsys, "results", key, "--stack", stack, "--out", str(tmp_path / "r"))
    assert code == 3
    assert "still running" in out
    assert not (tmp_path / "r").exists()  # no results page for a job without results


def test_ctrl_c_while_following_says_the_job_goes_on(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job the model keeps in its queue, and Ctrl-C pressed once it is uploaded
    key = "inputs/cli/ctrl-c.jpg"
    presser = press_ctrl_c_once_uploaded(pipeline, key)
    # When edit follows it
    code, _, err = run_edit(
        capsys, pipeline, key, "--prompt", "x [fault:stuck-in-queue]", "--timeout", "30"
    )
    presser.join()
    # Then it stops with 130 and says where the job is
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        "error: interrupted; the job goes on in the stack: "
        "kontext-pipeline status inputs/cli/ctrl-c.jpg"
    )


def test_a_failed_job_exits_1_with_the_reason(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job the model fails
    prompt = "x [fault:model-error]"
    # When it is edited for a script
    code, out, _ = run_edit(capsys, pipeline, "inputs/cli/broken.jpg", "--prompt", prompt, "--json")
    # Then the document names the error, the reason and the model's message, with exit code 1
    document = json.loads(out)
    assert code == 1
    assert document["status"] == "FAILED"
    assert document["error"] == "ModelRequestFailedError"
    assert document["reason"] == "model_error"
    assert document["message"].startswith("the model reported: Model crashed")


def test_a_failed_job_tells_the_person_its_reason_and_message(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a job the pipeline refuses (the bytes are not an image)
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("shopping list")
    stack = pipeline.stack.name  # type: ignore[union-attr]
    # When it is edited without --json, writing results
    code, out, _ = run_cli(
        capsys,
        "edit",
        str(not_an_image),
        "--prompt",
        "x",
        "--stack",
        stack,
        "--key",
        "inputs/cli/notes.jpg",
        "--out",
        str(tmp_path / "out"),
    )
    # Then the line names the reason and what is wrong, as the local run does
    assert code == 1
    assert out.startswith("FAILED: not_an_image: s3://")
    assert "is not a JPEG, PNG, WebP, GIF or AVIF image" in out
    # And the results page shows the failure
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'id="failure"' in page
    assert "not_an_image" in page
    # And `status` says the same
    code, out, _ = run_cli(capsys, "status", "inputs/cli/notes.jpg", "--stack", stack)
    assert code == 1
    assert "failed: not_an_image: s3://" in out


def test_a_prompt_too_long_for_metadata_is_sent_in_a_sidecar(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a 10,000-character prompt (S3 takes 2 KB of user metadata in all)
    prompt = ("Put a donut next to the flour. " * 323)[:10_000]
    # When it is edited
    code, _, err = run_edit(
        capsys,
        pipeline,
        "inputs/cli/long.jpg",
        "--prompt",
        prompt,
        "--out",
        str(tmp_path),
        "--json",
    )
    # Then the job ran with the whole prompt, read from the sidecar uploaded first
    assert code == 0, err
    assert "inputs/cli/long.jpg.prompt.txt" in err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["prompt"] == prompt.strip()


def test_status_of_a_key_with_no_job_is_a_usage_error_not_a_failed_job(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a key nothing was uploaded under
    stack = pipeline.stack.name  # type: ignore[union-attr]
    out = tmp_path / "never"
    for command in ("status", "results"):
        argv = [command, "inputs/cli/never-uploaded.jpg", "--stack", stack]
        # When status or results asks for its job
        code, _, err = run_cli(
            capsys, *argv, *(["--out", str(out)] if command == "results" else [])
        )
        # Then the key is named as a usage problem (2), not as a failed job (1)
        assert code == 2
        assert "no job for inputs/cli/never-uploaded.jpg" in err
    # And nothing was left behind for a job that does not exist
    assert not out.exists()


def test_jobs_lists_recent_jobs_with_status_reason_and_cost(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a successful and a failed job
    stack = pipeline.stack.name  # type: ignore[union-attr]
    for key, prompt in (
        ("inputs/cli/jobs-ok.jpg", "ok"),
        ("inputs/cli/jobs-bad.jpg", "x [fault:model-error]"),
    ):
        code, _, _ = run_edit(capsys, pipeline, key, "--prompt", prompt)
        assert code in (0, 1)
    # When the recent jobs are listed for a script
    code, out, _ = run_cli(
        capsys, "jobs", "--stack", stack, "--since", "1h", "--limit", "50", "--json"
    )
    jobs = {job["key"]: job for job in json.loads(out)["jobs"]}
    # Then each has its status, reason, request id, duration and a cost estimate
    assert code == 0
    ok, bad = jobs["inputs/cli/jobs-ok.jpg"], jobs["inputs/cli/jobs-bad.jpg"]
    assert (ok["status"], ok["reason"], ok["images"]) == ("SUCCEEDED", None, 1)
    assert ok["cost_usd"] > 0.08  # the model's image, plus the state transitions
    assert ok["request_id"]
    assert ok["seconds"] > 0
    assert (bad["status"], bad["reason"]) == ("FAILED", "model_error")
    # And --status keeps only the failures; the table is for people
    code, out, _ = run_cli(capsys, "jobs", "--stack", stack, "--status", "failed", "--limit", "50")
    assert code == 0
    assert "inputs/cli/jobs-bad.jpg" in out
    assert "inputs/cli/jobs-ok.jpg" not in out
    assert out.splitlines()[0].startswith("started (UTC)")


def test_redrive_replays_the_triggers_dead_letters(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an upload whose trigger invocation ended in the dead-letter queue
    # (here: a failure record for a real object, as Lambda writes it after its retries)
    stack = pipeline.stack.name  # type: ignore[union-attr]
    source = pipeline.upload(Path(SAMPLE), prompt="make it snow", key="inputs/cli/redrive.jpg")
    pipeline.wait_for_notification(source, timeout=60)
    event = json.loads((ROOT / "events" / "s3_put.json").read_text())
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = pipeline.bucket
    record["s3"]["object"].update(key="inputs/cli/redrive.jpg", sequencer="00FFFFFFFFFFFFFFFF")
    record["s3"]["object"].pop("versionId", None)
    sqs = pipeline.clients.sqs
    sqs.send_message(
        QueueUrl=pipeline.outputs["TriggerDeadLetterQueueUrl"],
        MessageBody=json.dumps(
            {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
        ),
    )
    before = len(pipeline.executions())
    # When the dead-letter queue is redriven
    code, out, _ = run_cli(capsys, "redrive", "--stack", stack, "--json")
    # Then the event went back to the trigger, which started its job
    assert code == 0
    assert json.loads(out)["replayed"] == 1
    deadline = time.monotonic() + 30
    while len(pipeline.executions()) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(pipeline.executions()) == before + 1
    # And a second redrive finds the queue empty
    code, out, _ = run_cli(capsys, "redrive", "--stack", stack)
    assert (code, out.strip()) == (0, "the trigger's dead-letter queue is empty: nothing to replay")


def test_invalid_options_are_refused_before_upload(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an option value the pipeline would refuse
    # When edit runs with it
    code, _, err = run_edit(
        capsys, pipeline, "inputs/cli/never.jpg", "--prompt", "x", "--num-images", "9"
    )
    # Then it stops with exit 2 naming the option, and nothing was uploaded
    assert code == 2
    assert "num-images=9" in err
    listing = pipeline.clients.s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="inputs/cli/never")
    assert "Contents" not in listing


def test_an_unknown_stack_is_named(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no stack of that name / When a command names it
    code, _, err = run_cli(capsys, "status", "inputs/x.jpg", "--stack", "no-such-stack")
    # Then the stack is named, with the usage exit code
    assert code == 2
    assert "stack 'no-such-stack' not found" in err


def test_put_key_stores_the_key_in_the_stacks_secret(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a new key in FAL_KEY
    monkeypatch.setenv("FAL_KEY", "fal-new-key")
    # When put-key runs
    code, _, _ = run_cli(capsys, "put-key", "--stack", pipeline.stack.name)  # type: ignore[union-attr]
    # Then the stack's secret holds it
    secret = pipeline.clients.secretsmanager.get_secret_value(
        SecretId=pipeline.outputs["FalApiKeySecretArn"]
    )
    assert (code, secret["SecretString"]) == (0, "fal-new-key")


def rolled_back_stack(pipeline: LocalPipeline, name: str) -> str:
    """A stack whose first deploy failed: ROLLBACK_COMPLETE, no outputs. Returns its id."""
    from moto.cloudformation.models import cloudformation_backends

    template = {
        "Description": "kontext-pipeline: a first deploy that failed",
        "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    }
    stack_id: str = pipeline.clients.cloudformation.create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )["StackId"]
    account, region = stack_id.split(":")[4], stack_id.split(":")[3]
    # moto never rolls a stack back by itself
    cloudformation_backends[account][region].stacks[stack_id].status = "ROLLBACK_COMPLETE"
    return stack_id


@pytest.mark.filterwarnings("ignore:Tried to parse AWS.*WaitConditionHandle")
def test_teardown_removes_a_stack_whose_first_deploy_rolled_back(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    # Given a rolled-back stack whose images bucket survived (DeletionPolicy: Retain),
    # with two versions of an upload in it
    stack_id = rolled_back_stack(pipeline, "kontext-rolled-back")
    s3 = pipeline.clients.s3
    bucket = "kontext-images-" + stack_id.split("/")[2]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket=bucket, Key="inputs/photo.jpg", Body=body)
    # When it is torn down
    code, _, err = run_cli(capsys, "teardown", "--stack", "kontext-rolled-back")
    # Then the stack is deleted, and the bucket with every version in it
    assert code == 0, err
    (stack,) = pipeline.clients.cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
    assert stack["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=bucket)
    assert "was ROLLBACK_COMPLETE" in err
    assert "removed 2 object versions" in err


@pytest.mark.filterwarnings("ignore:Tried to parse AWS.*WaitConditionHandle")
def test_teardown_of_a_rolled_back_stack_that_never_made_its_bucket(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack that rolled back before its bucket was created
    stack_id = rolled_back_stack(pipeline, "kontext-rolled-back-early")
    # When it is torn down
    code, _, err = run_cli(capsys, "teardown", "--stack", "kontext-rolled-back-early")
    # Then the stack is deleted and the missing bucket is no error
    assert code == 0, err
    (stack,) = pipeline.clients.cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
    assert stack["StackStatus"] == "DELETE_COMPLETE"
    assert "no images bucket" in err


@pytest.mark.filterwarnings("ignore:Tried to parse AWS.*WaitConditionHandle")
def test_teardown_refuses_a_stack_that_is_not_the_pipelines(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given someone else's stack
    template = {"Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
    cloudformation = pipeline.clients.cloudformation
    cloudformation.create_stack(StackName="someone-elses", TemplateBody=json.dumps(template))
    # When teardown is pointed at it
    code, _, err = run_cli(capsys, "teardown", "--stack", "someone-elses")
    # Then it is left alone
    assert code == 2
    assert "not a kontext-pipeline stack" in err
    (stack,) = cloudformation.describe_stacks(StackName="someone-elses")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
