"""The command's own checks and messages, before anything reaches AWS (or when it cannot)."""

from __future__ import annotations

import io
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kontext_pipeline.core.models import SourceObject

from kontext_tools.cli import main
from kontext_tools.cli.arguments import TEMPLATE_PATH, parse_parameter_overrides, parse_since
from kontext_tools.cli.aws import describe_aws_error, required_output
from kontext_tools.cli.burst import burst_counts
from kontext_tools.cli.exits import CliError
from kontext_tools.cli.local import NotificationWatch
from kontext_tools.cli.output import ProgressPrinter
from kontext_tools.cli.results import ResultsFolder
from kontext_tools.deployed import (
    JobProgress,
    StackOutputs,
    prompt_goes_to_sidecar,
    redrive_dead_letters,
    stack_name_from_samconfig,
    upload_image,
)
from tests.conftest import ROOT, kontext

SAMPLE = str(ROOT / "samples" / "kitchen-table.jpg")
NO_AWS_CONFIG = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err
    return err


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_AWS_CONFIG.items():
        monkeypatch.setenv(name, value)


# --- setup problems: one line, exit 2 ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "inputs/x.jpg"],
        ["results", "inputs/x.jpg"],
        ["jobs"],
        ["redrive"],
        ["put-key"],
        ["teardown"],
        ["edit", SAMPLE, "--prompt", "make it snow"],
    ],
)
def test_no_region_is_one_line_naming_the_fix_with_exit_2(
    argv: list[str],
    no_region: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given credentials but no region anywhere (results writes into a temporary folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAL_KEY", "k")  # put-key would otherwise ask
    # When any deployed-stack command runs
    code = main([*argv, "--stack", "s"])
    # Then one line says how to set a region, with the setup exit code
    assert code == 2
    assert "no AWS region configured" in one_line_error(capsys)


def test_aws_region_alone_is_enough(
    no_region: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given only AWS_REGION (which botocore ignores) and an endpoint that is not there
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    # When a command runs
    code = main(["status", "inputs/x.jpg", "--stack", "s"])
    # Then the region was taken: the problem reported is the unreachable endpoint
    assert code == 2
    err = one_line_error(capsys)
    assert "region" not in err
    assert "cannot reach http://127.0.0.1" in err


def test_offline_with_credentials_is_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given credentials and a region, but AWS cannot be reached
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    # When a command runs
    code = main(["jobs", "--stack", "s", "--region", "us-east-1"])
    # Then one line names the endpoint and what to check
    assert code == 2
    assert "check the network connection" in one_line_error(capsys)


def test_missing_credentials_get_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no credentials anywhere (and no instance metadata to ask)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_AWS_CONFIG.items():
        monkeypatch.setenv(name, value)
    # When a deployed-stack command runs / Then it says how to fix it, with exit code 2
    assert main(["status", "inputs/x.jpg", "--stack", "s", "--region", "us-east-1"]) == 2
    assert "configure AWS credentials" in one_line_error(capsys)


def test_an_unknown_profile_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a profile that is not configured
    monkeypatch.setenv("AWS_PROFILE", "nobody-has-this-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    # When a command runs / Then one line names the profile, with exit code 2
    assert main(["jobs", "--stack", "s", "--region", "us-east-1"]) == 2
    assert "nobody-has-this-profile" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ExpiredToken", "refresh them"),
        ("AccessDenied", "not allowed to DescribeStacks"),
        ("ThrottlingException", "AWS DescribeStacks failed: ThrottlingException"),
    ],
)
def test_aws_refusals_become_one_actionable_line(code: str, expected: str) -> None:
    # Given an error as botocore raises it
    error = ClientError({"Error": {"Code": code, "Message": "no"}}, "DescribeStacks")
    # When described / Then the line names what to do, and nothing else is said
    message = describe_aws_error(error)
    assert message is not None
    assert expected in message
    assert "\n" not in message


def test_errors_that_are_not_aws_errors_are_not_disguised() -> None:
    # Given a bug, not an AWS problem / When described / Then it is left to its traceback
    assert describe_aws_error(ValueError("a bug")) is None


# --- input problems: refused before anything is uploaded --------------------------------


def test_a_missing_image_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an image path that is not there / When edit runs / Then it stops at once
    assert main(["edit", "/nonexistent.jpg", "--prompt", "x", "--stack", "s"]) == 2
    assert "is not a file" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("   ", "the prompt is empty"), ("x" * 10_001, "at most 10,000")],
)
@pytest.mark.parametrize("command", ["edit", "local"])
def test_a_blank_or_over_long_prompt_is_refused_before_upload(
    command: str,
    prompt: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Given a prompt the pipeline would refuse; no AWS is configured to reach
    monkeypatch.chdir(tmp_path)
    argv = (
        ["edit", SAMPLE, "--stack", "s"]
        if command == "edit"
        else ["local", "--image", SAMPLE, "--out", "never-written"]
    )
    # When the command runs / Then it stops at once, naming the rule
    assert main([*argv, "--prompt", prompt]) == 2
    assert expected in one_line_error(capsys)
    assert not Path("never-written").exists()


def test_option_values_are_checked_by_the_pipelines_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a guidance scale past the model's 1 to 20
    argv = ["edit", SAMPLE, "--prompt", "x", "--guidance-scale", "50", "--stack", "s"]
    # When edit runs / Then the pipeline's own rule refuses it, naming the value
    assert main(argv) == 2
    assert "guidance-scale=50.0" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["edit", "local", "results"])
def test_an_out_that_is_a_file_is_refused_before_anything_runs(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given --out naming an existing file
    taken = tmp_path / "taken"
    taken.write_text("mine")
    argv = {
        "edit": ["edit", SAMPLE, "--prompt", "x", "--stack", "s"],
        "local": ["local", "--image", SAMPLE, "--prompt", "x"],
        "results": ["results", "inputs/x.jpg", "--stack", "s"],
    }[command]
    # When the command runs / Then it stops before any upload or stack lookup
    assert main([*argv, "--out", str(taken)]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert taken.read_text() == "mine"


def test_an_out_below_a_file_is_refused_and_nothing_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given --out inside a path where a file stands
    (tmp_path / "taken").write_text("mine")
    out = tmp_path / "taken" / "results"
    # When a command that writes results runs / Then it stops at once
    assert main(["local", "--image", SAMPLE, "--prompt", "x", "--out", str(out)]) == 2
    assert "is a file" in one_line_error(capsys)


def test_output_format_jpg_is_accepted_as_the_readme_says(
    capsys: pytest.CaptureFixture[str], no_region: None
) -> None:
    # Given `jpg`, which the README's metadata table allows
    # When edit checks its options
    code = main(["edit", SAMPLE, "--prompt", "x", "--output-format", "jpg", "--stack", "s"])
    # Then the option passed and the command went on to AWS (and stopped at the region)
    assert code == 2
    assert "no AWS region" in capsys.readouterr().err


# --- options parsed for the person ------------------------------------------------------


def test_since_takes_durations_and_iso_times() -> None:
    # Given a fixed now / When durations and an ISO time (without a zone) are read
    # Then each is the moment meant, in UTC
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now=now) == now - timedelta(minutes=90)
    assert parse_since("1d", now=now) == now - timedelta(days=1)
    assert parse_since("2026-11-26T10:00:00", now=now) == datetime(2026, 11, 26, 10, tzinfo=UTC)


def test_a_since_that_is_neither_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a --since that is neither a duration nor a time / When jobs runs
    # Then one line shows the forms it takes
    assert main(["jobs", "--since", "yesterday-ish", "--stack", "s"]) == 2
    assert "30m, 2h, 1d" in one_line_error(capsys)


def test_parameter_overrides_take_both_sam_deploy_forms() -> None:
    # Given both of sam deploy's forms, a value holding commas and '='
    items = ["OutputPrefix=edited/", "ParameterKey=DefaultPrompt,ParameterValue=a, b = c"]
    # When read against the template
    overrides = parse_parameter_overrides(items, TEMPLATE_PATH)
    # Then each names its parameter and keeps its whole value
    assert overrides == {"OutputPrefix": "edited/", "DefaultPrompt": "a, b = c"}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("NoSuchParameter=1", "'NoSuchParameter' is not a template parameter"),
        ("CompletionMode=sometimes", "is not one of poll, webhook"),
        ("OutputPrefix", "write Name=Value"),
    ],
)
def test_a_bad_parameter_override_is_refused_before_the_stack_is_stood_up(
    item: str, expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given an override the template does not declare, does not allow, or cannot be read
    argv = ["local", "--image", SAMPLE, "--prompt", "x", "--out", str(tmp_path)]
    # When the local run starts / Then it stops before standing anything up, naming why
    assert main([*argv, "--parameter-overrides", item]) == 2
    assert expected in one_line_error(capsys)


def stand_in(path: Path, body: str) -> Path:
    """An executable shell script standing in for a tool."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_local_stack_that_cannot_be_built_is_one_line_with_the_details_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given sam build fails with long output: a stand-in sam, a stand-in interpreter of the
    # runtime's version, and a build folder of its own, so that a build is due
    failing_sam = 'echo "Build Failed" >&2; echo "Error: PythonPipBuilder" >&2; exit 1'
    monkeypatch.setenv("SAM_CLI", str(stand_in(tmp_path / "sam", failing_sam)))
    monkeypatch.setenv("LAMBDA_PYTHON", str(stand_in(tmp_path / "python3.12", "echo 3.12")))
    monkeypatch.setenv("KONTEXT_LOCAL_BUILD_DIR", str(tmp_path / "build"))
    # When the local run starts
    out = tmp_path / "out"
    done = kontext("local", "--image", SAMPLE, "--prompt", "x", "--out", str(out))
    # Then one line names the problem and where the rest is, with the setup exit code
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "could not be stood up: sam build failed (exit 1)" in done.stderr
    assert "Error: PythonPipBuilder" in (out / "local-run.log").read_text()


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    # Given --version on the command and on a subcommand
    # When each runs / Then the version is printed and the command exits 0
    for argv in (["--version"], ["local", "--version"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 0
        assert capsys.readouterr().out.startswith("kontext-pipeline ")


def test_emulator_options_reach_the_emulators_own_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the example in the command's help (`emulator --port 8787`), asked for its help
    # When it runs
    with pytest.raises(SystemExit) as stopped:
        main(["emulator", "--port", "8787", "--help"])
    # Then the emulator's parser answered, with its own options
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "--run-seconds" in out
    assert "--port" in out


def test_an_unknown_emulator_option_is_refused_by_the_emulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an option the emulator does not have / When it runs
    with pytest.raises(SystemExit) as stopped:
        main(["emulator", "--no-such-option"])
    # Then the emulator's parser refuses it, with exit code 2
    assert stopped.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err


# --- progress ---------------------------------------------------------------------------


def progress(state: str, model: str | None = None, position: int | None = None) -> JobProgress:
    return JobProgress(
        execution_arn="arn",
        execution_status="RUNNING",
        state=state,
        model_status=model,
        queue_position=position,
        history=[],
        output=None,
        error=None,
        cause=None,
    )


def test_progress_prints_changes_and_a_heartbeat_while_nothing_changes() -> None:
    # Given a printer with a 10 s heartbeat
    stream = io.StringIO()
    show = ProgressPrinter(stream, heartbeat=10.0)
    # When the job sits in the queue for 25 s, then starts
    for elapsed in (0.0, 3.0, 9.0, 10.5, 15.0, 21.0, 25.0):
        show(progress("WaitForModel", "IN_QUEUE", 3), elapsed)
    show(progress("WaitForModel", "IN_PROGRESS"), 26.0)
    # Then: the first sight, a heartbeat each 10 s with elapsed time, then the change
    lines = stream.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["0.0", "10.5", "21.0", "26.0"]
    assert "still state WaitForModel · model IN_QUEUE (queue position 3)" in lines[1]
    assert lines[3].endswith("state WaitForModel · model IN_PROGRESS")


def test_the_heartbeat_also_beats_before_the_job_has_started() -> None:
    # Given no execution yet (the trigger has not run, or failed)
    stream = io.StringIO()
    show = ProgressPrinter(stream, heartbeat=10.0)
    # When the wait goes on for 21 s
    for elapsed in (1.0, 5.0, 10.0, 15.0, 21.0):
        show.no_job_yet(elapsed)
    # Then the person hears every 10 s that it is still waiting, and on what
    lines = stream.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["10.0", "21.0"]
    assert lines[0].endswith("waiting for the trigger to start the job")


def test_progress_stops_a_run_whose_ctrl_c_was_swallowed() -> None:
    # Given Ctrl-C was pressed (and something in between caught the KeyboardInterrupt)
    show = ProgressPrinter(io.StringIO())
    show.interrupted.set()
    # When the next progress tick comes / Then the interrupt is raised again
    with pytest.raises(KeyboardInterrupt):
        show(progress("WaitForModel"), 1.0)


def test_a_local_job_that_ended_without_a_notification_stops_the_wait(tmp_path: Path) -> None:
    # Given a local run waiting for a notification, and its execution ended without one
    watch = NotificationWatch(ProgressPrinter(io.StringIO()), tmp_path / "run.log", grace=5.0)
    ended = replace(
        progress("FailureNotReported"),
        execution_status="FAILED",
        error="FailureNotReported",
        cause="the failure notification could not be published",
    )
    # When progress comes in: still running, just ended (the message may be in flight)
    watch(progress("ReportFailure"), 1.0)
    watch(ended, 2.0)
    # Then, once the grace has passed, the wait stops as a failed job naming the log file
    with pytest.raises(CliError) as stopped:
        watch(ended, 7.5)
    assert stopped.value.code == 1
    assert "ended FAILED (FailureNotReported" in stopped.value.message
    assert str(tmp_path / "run.log") in stopped.value.message


# --- prompts too long for S3 metadata ---------------------------------------------------


class RecordingS3:
    """Records put_object calls in order (S3's own answers do not matter here)."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **request: Any) -> dict[str, Any]:
        self.puts.append(request)
        return {"ETag": '"e"', "VersionId": "v1"}


def test_a_prompt_too_long_for_metadata_goes_into_a_sidecar_written_first() -> None:
    # Given a 10,000-character prompt: far past S3's 2 KB of user metadata
    s3 = RecordingS3()
    prompt = "Put a donut next to the flour. " * 322 + "x" * 18
    assert len(prompt) == 10_000
    # When the image is uploaded
    upload_image(s3, "b", "inputs/a.jpg", b"img", prompt=prompt, options={"num_images": 2})
    # Then the sidecar comes first (the image's upload starts the job), and holds the prompt
    sidecar, image = s3.puts
    assert sidecar["Key"] == "inputs/a.jpg.prompt.txt"
    assert sidecar["Body"].decode() == prompt
    # And the image keeps its options in metadata, without the prompt
    assert image["Key"] == "inputs/a.jpg"
    assert image["Metadata"] == {"num-images": "2"}


def test_a_prompt_that_fits_stays_in_metadata() -> None:
    # Given a short prompt (non-ASCII, so encoded for S3)
    s3 = RecordingS3()
    # When the image is uploaded
    upload_image(s3, "b", "inputs/a.jpg", b"img", prompt="make it snow ☃")
    # Then only the image is put, with the prompt in its metadata
    (image,) = s3.puts
    assert image["Metadata"]["prompt"].startswith("=?utf-8?")
    assert not prompt_goes_to_sidecar("make it snow ☃")


def test_a_non_ascii_prompt_is_measured_as_s3_measures_it_encoded() -> None:
    # Given 700 snowmen: 700 characters, but 2,100 UTF-8 bytes and more once encoded
    s3 = RecordingS3()
    # When the image is uploaded
    upload_image(s3, "b", "inputs/a.jpg", b"img", prompt="☃" * 700)
    # Then it does not fit in metadata and goes into the sidecar
    assert [put["Key"] for put in s3.puts] == ["inputs/a.jpg.prompt.txt", "inputs/a.jpg"]
    assert prompt_goes_to_sidecar("☃" * 700)


# --- the trigger's dead-letter queue ----------------------------------------------------


class RecordingLambda:
    def __init__(self) -> None:
        self.invoked: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.invoked.append(request)
        return {"StatusCode": 202}


def test_redrive_hands_each_failed_event_back_to_the_trigger_and_leaves_the_rest(
    aws: Any,
) -> None:
    # Given a dead-letter queue with a Lambda failure record and a stray message
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    event = json.loads((ROOT / "events" / "s3_put.json").read_text())
    failure_record = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responsePayload": {"errorMessage": "Rate exceeded"},
    }
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(failure_record))
    sqs.send_message(QueueUrl=queue, MessageBody="not a failure record")
    lambdas = RecordingLambda()
    # When redriven
    outcome = redrive_dead_letters(sqs, lambdas, queue, "arn:aws:lambda:::function:start")
    # Then the S3 event went back to the trigger asynchronously, as S3 sends it
    assert (outcome.replayed, outcome.unreadable) == (1, 1)
    (call,) = lambdas.invoked
    assert call["InvocationType"] == "Event"
    assert json.loads(call["Payload"]) == event
    # And the stray message is still in the queue (after its visibility timeout)
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_stack_without_a_trigger_is_named(aws: Any) -> None:
    from kontext_tools.deployed import DeployedStackError, trigger_function_of

    # Given a bucket whose uploads notify no function
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="bare")
    # When the trigger is looked for / Then the bucket is named as triggering nothing
    with pytest.raises(DeployedStackError, match="triggers no function"):
        trigger_function_of(s3, "bare")


def test_the_stack_name_comes_from_samconfig() -> None:
    # Given the project's samconfig.toml / When its stack name is read / Then it is the one
    # `sam deploy` uses
    assert stack_name_from_samconfig(ROOT / "samconfig.toml") == "kontext-pipeline"


# --- pieces of the commands -------------------------------------------------------------


def test_a_stack_output_the_command_needs_is_named_when_missing() -> None:
    # Given a stack deployed before its backfill existed, and one with it
    old = StackOutputs(name="old", outputs={"ImagesBucketName": "b"})
    new = StackOutputs(name="new", outputs={"BackfillStateMachineArn": "arn:backfill"})
    # When the command asks each for the output
    # Then the new one gives it, the old one is a usage problem saying to redeploy
    assert required_output(new, "BackfillStateMachineArn") == "arn:backfill"
    with pytest.raises(CliError) as refused:
        required_output(old, "BackfillStateMachineArn")
    assert refused.value.code == 2
    assert refused.value.message == "stack old has no BackfillStateMachineArn output; redeploy it"


def test_the_most_specific_kind_of_aws_error_describes_it() -> None:
    from botocore.exceptions import BotoCoreError, NoRegionError, WaiterError

    # Given errors of kinds that are also BotoCoreErrors, and a plain one
    waiter = WaiterError(name="StackDeleteComplete", reason="Max attempts", last_response={})
    # When each is described
    # Then each gets its own line before the catch-all "AWS: ..."
    assert describe_aws_error(NoRegionError()) == (
        "no AWS region configured: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
        "or run aws configure"
    )
    assert str(describe_aws_error(waiter)).startswith("AWS did not finish: Waiter ")
    assert describe_aws_error(BotoCoreError()) == "AWS: An unspecified error occurred"


def test_the_input_is_fetched_for_the_report_only_when_it_is_not_at_hand(
    aws: Any, tmp_path: Path
) -> None:
    # Given a bucket with the job's input, and one key with nothing under it
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="images")
    s3.put_object(Bucket="images", Key="inputs/a.JPG", Body=b"the input")
    here, gone = (SourceObject(bucket="images", key=key) for key in ("inputs/a.JPG", "inputs/b"))
    out = tmp_path / "out"
    at_hand = tmp_path / "mine.jpg"
    # When results go to a folder with only the key known, with the image known, or nowhere
    fetched = ResultsFolder(out).with_input(s3, here)
    kept = ResultsFolder(out, at_hand).with_input(s3, here)
    nowhere = ResultsFolder(None).with_input(s3, here)
    missing = ResultsFolder(tmp_path / "other").with_input(s3, gone)
    # Then only the first is downloaded (beside the report, suffix lower-cased)
    assert fetched.input_image == out / "input.jpg"
    assert fetched.input_image.read_bytes() == b"the input"
    assert (kept.input_image, nowhere.input_image) == (at_hand, None)
    # And an input that is no longer there leaves the report without it
    assert missing.input_image is None


class EmulatorSeen:
    """The emulated model's requests, as the burst's counts read them."""

    def __init__(self, *statuses: str) -> None:
        self._requests = [SimpleNamespace(status=status) for status in statuses]

    def requests(self) -> list[SimpleNamespace]:
        return self._requests


def received(status: str) -> SimpleNamespace:
    return SimpleNamespace(notification=SimpleNamespace(status=status))


def test_a_bursts_counts_split_open_jobs_into_running_and_queued() -> None:
    # Given 5 images: 1 done, 1 failed, and the model running 2 of the 3 still open
    pipeline = SimpleNamespace(emulator=EmulatorSeen("IN_PROGRESS", "IN_PROGRESS", "COMPLETED"))
    finished = {"a": received("SUCCEEDED"), "b": received("FAILED")}
    # When the burst counts them
    counts = burst_counts(pipeline, finished, 5)  # type: ignore[arg-type]
    # Then each open job is either running or queued, never both
    assert counts == {"queued": 1, "running": 2, "done": 1, "failed": 1}
    # And with an external model queue nothing is seen running: every open job is queued
    external = burst_counts(SimpleNamespace(emulator=None), finished, 5)  # type: ignore[arg-type]
    assert external == {"queued": 3, "running": 0, "done": 1, "failed": 1}
