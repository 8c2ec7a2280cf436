"""Every function's lambda_handler, called as Lambda calls it, with a Runtime of the test's
own: AWS on moto, the model's queue a fake (tests/fakes.py), the sample events of events/."""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from kontext_pipeline.core.config import PipelineSettings, SettingsPiece
from kontext_pipeline.core.models import QueueStatus
from kontext_pipeline.core.notification import Notification
from kontext_pipeline.jobs.keys import webhook_item_key
from kontext_pipeline.jobs.published import record_outcome
from kontext_pipeline.runtime import Runtime

from kontext_tools.local.stack import load_template
from tests.conftest import JOBS_TABLE, ROOT, data_uri, load_event, make_image
from tests.fakes import Context, FakeQueue

BUCKET = "kontext-images-0b1c2d3e"
TEMPLATE = load_template(ROOT / "template.yaml")  # the sample task events' bucket


def template_settings(function: str | None = None) -> set[str]:
    """The settings template.yaml gives functions/<function> (Globals' and its own), or
    with no function, those it gives any function."""
    names = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    for resource in TEMPLATE["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and function in (
            None,
            properties["CodeUri"].removeprefix("functions/").rstrip("/"),
        ):
            names |= set(properties.get("Environment", {}).get("Variables", {}))
    return {name.lower() for name in names}


@dataclass(frozen=True)
class FunctionUnderTest:
    name: str
    module: ModuleType

    def lambda_handler(self, event: Any, context: Context, runtime: Runtime[Any]) -> Any:
        """The handler, as Lambda calls it: with a Runtime over the test's clients holding
        its own function's settings model, so a member built from a piece that model lacks
        fails here, as it would on Lambda."""
        model = settings_model(self.name)
        own = model(**runtime.settings.model_dump(include=set(model.model_fields)))
        return self.module.lambda_handler(
            event, context, Runtime(settings=own, queue_override=runtime.queue_override)
        )


# The functions that are no step: their settings model is declared in their own room.
ROOM_MODULES = {"intake": "kontext_pipeline.intake.routes"}


def settings_model(function: str) -> type[SettingsPiece]:
    """functions/<function>'s settings model: `<Function>Settings`, beside its step."""
    step = importlib.import_module(ROOM_MODULES.get(function, f"kontext_pipeline.steps.{function}"))
    model: type[SettingsPiece] = getattr(step, function.title().replace("_", "") + "Settings")
    return model


FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_is_given_exactly_the_settings_its_model_reads(function: str) -> None:
    # Given a function's settings model and the environment the template gives it
    reads = set(settings_model(function).model_fields)
    given = {name for name in template_settings(function) if not name.startswith("powertools_")}
    # Then every variable it is given is one it reads
    assert given - reads == set()
    # And every setting it reads that the template sets for any function is set for this
    # one: a missing one would fall back to its default on AWS without a word (a cap of 0,
    # say, and slots never freed). Settings the template sets for no function keep their
    # documented defaults.
    assert (reads & template_settings()) - given == set()


def handler(function: str) -> FunctionUnderTest:
    """functions/<function>/app.py, loaded as Lambda loads it (each folder its own `app`)."""
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"app_{function}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return FunctionUnderTest(function, module)


@pytest.fixture
def runtime(aws: Any, jobs_table: Any) -> Runtime[PipelineSettings]:
    """A Runtime over moto: the bucket, the topic, the table and an edit state machine."""
    s3 = aws.client("s3")
    for bucket in (BUCKET, "kontext-images-example"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic = aws.client("sns").create_topic(Name="jobs")["TopicArn"]
    machine = aws.client("stepfunctions").create_state_machine(
        name="edit",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    # A queue on the topic, so a test can read what was published.
    sqs = aws.client("sqs")
    inbox = sqs.create_queue(QueueName="published")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    aws.client("sns").subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=inbox_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    settings = PipelineSettings(
        jobs_table=JOBS_TABLE, topic_arn=topic, state_machine_arn=machine, images_bucket=BUCKET
    )
    return Runtime(settings=settings, queue_override=FakeQueue())


def published(runtime: Runtime) -> list[dict[str, Any]]:
    """The notifications the topic received (through the test's queue on it)."""
    sqs = runtime.make_client("sqs")
    inbox = sqs.get_queue_url(QueueName="published")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def queue_of(runtime: Runtime) -> FakeQueue:
    assert isinstance(runtime.queue_override, FakeQueue)
    return runtime.queue_override


def test_start_edit_starts_one_execution_per_upload(runtime: Runtime) -> None:
    # Given the sample S3 put event
    event = load_event("s3_put")
    # When the trigger runs
    answer = handler("start_edit").lambda_handler(event, Context(), runtime)
    # Then its one object started a job
    assert [job["outcome"] for job in answer["jobs"]] == ["started"]


def test_submit_edit_submits_the_upload(runtime: Runtime) -> None:
    # Given the sample SubmitEdit task, its upload in the bucket with a prompt
    event = load_event("task_submit_edit")
    put = runtime.s3.put_object(
        Bucket=BUCKET,
        Key="inputs/kitchen-table.jpg",
        Body=make_image("JPEG"),
        Metadata={"prompt": "Put a donut next to the flour."},
    )
    event["job"]["source"]["version_id"] = put["VersionId"]
    # When the task runs
    answer = handler("submit_edit").lambda_handler(event, Context(), runtime)
    # Then the model got it once, and the state machine gets the job to poll
    assert len(queue_of(runtime).submitted) == 1
    assert answer["request_id"] == "req-1"
    assert answer["prompt"] == "Put a donut next to the flour."


def test_check_status_moves_a_completed_request_on(runtime: Runtime) -> None:
    # Given the sample CheckStatus task, and the queue's COMPLETED answer
    queue_of(runtime).statuses.append(
        QueueStatus.model_validate(load_event("fal_status_completed"))
    )
    # When the task runs
    answer = handler("check_status").lambda_handler(
        load_event("task_check_status"), Context(), runtime
    )
    # Then the job is COMPLETED after one look
    assert (answer["status"], answer["polls"]) == ("COMPLETED", 1)


def test_collect_outputs_stores_the_result_and_publishes(runtime: Runtime) -> None:
    # Given a completed job whose result carries its image inline
    event = load_event("task_check_status")
    event["job"]["status"] = "COMPLETED"
    result = load_event("fal_result")
    result["images"][0]["url"] = data_uri(make_image())
    event["job"]["result"] = result
    # When the task runs
    answer = handler("collect_outputs").lambda_handler(event, Context(), runtime)
    # Then the output and the manifest are in S3, and the job SUCCEEDED
    assert answer["status"] == "SUCCEEDED"
    [output] = answer["outputs"]
    assert output.startswith(f"s3://{BUCKET}/outputs/kitchen-table/")
    for uri in (output, answer["manifest_uri"]):
        runtime.s3.head_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))
    # And the success was published, naming the same output
    [notification] = published(runtime)
    assert notification["status"] == "SUCCEEDED"
    assert [stored["s3_uri"] for stored in notification["outputs"]] == [output]


def test_report_failure_cancels_and_publishes_the_reason(runtime: Runtime) -> None:
    # Given the sample failure branch's state: a request the model failed
    event = load_event("task_report_failure")
    # When the task runs
    answer = handler("report_failure").lambda_handler(event, Context(), runtime)
    # Then the request is cancelled, and the failure published with the model's reason
    assert answer == {"status": "FAILED", "reason": "model_image_load_error"}
    assert queue_of(runtime).cancelled == [event["job"]["cancel_url"]]
    [notification] = published(runtime)
    assert (notification["status"], notification["failure"]["reason"]) == (
        "FAILED",
        "model_image_load_error",
    )


def test_await_webhook_parks_the_task_token(runtime: Runtime) -> None:
    # Given a job waiting for its webhook, with the task's token
    event = {**load_event("task_check_status"), "task_token": "token-1"}
    # When the task runs
    answer = handler("await_webhook").lambda_handler(event, Context(), runtime)
    # Then the token is parked for the webhook to find
    assert answer == {"outcome": "waiting"}
    item = runtime.dynamodb.get_item(
        TableName=JOBS_TABLE, Key=webhook_item_key(event["job"]["request_id"])
    )["Item"]
    assert item["task_token"] == {"S": "token-1"}


@pytest.mark.parametrize(("method", "status"), [("GET", 405), ("POST", 401)])
def test_receive_webhook_refuses_what_is_not_a_signed_post(
    runtime: Runtime, method: str, status: int
) -> None:
    # Given a Function URL request that is not a POST, or a POST without a signature
    event = {
        "headers": {"content-type": "application/json"},
        "body": json.dumps(load_event("fal_webhook_ok")),
        "isBase64Encoded": False,
        "requestContext": {"http": {"method": method}},
    }
    # When the function is called / Then it is refused before anything is read
    answer = handler("receive_webhook").lambda_handler(event, Context(), runtime)
    assert answer["statusCode"] == status


def test_intake_takes_an_upload_request_with_a_key_the_cli_made(runtime: Runtime) -> None:
    # Given a key the CLI made, and the sample intake request asking for an upload form
    from kontext_tools.api_keys import ApiKeyAdmin

    _, key = ApiKeyAdmin(runtime.dynamodb, JOBS_TABLE).create("shop")
    event = load_event("function_url_intake_post")
    event["headers"] |= {"authorization": f"Bearer {key}", "idempotency-key": "upload-1"}
    event["body"] = json.dumps({"upload": True, "prompt": "make it snow"})
    # When the function is called, twice, and once with the sample's own (unknown) key
    intake = handler("intake")
    answers = [intake.lambda_handler(event, Context(), runtime) for _ in range(2)]
    forged = intake.lambda_handler(load_event("function_url_intake_post"), Context(), runtime)
    # Then one upload form under the input prefix, the same both times; the other refused
    assert [answer["statusCode"] for answer in answers] == [201, 201]
    assert json.loads(answers[0]["body"]) == json.loads(answers[1]["body"])
    assert json.loads(answers[0]["body"])["object"]["key"].startswith("inputs/api/ed_")
    assert forged["statusCode"] == 401
    assert forged["headers"]["Content-Type"] == "application/problem+json"


def test_start_backfill_edit_starts_the_listed_object(runtime: Runtime) -> None:
    # Given a listed object of the sample backfill item, still in the bucket
    event = load_event("task_start_backfill_edit")
    runtime.s3.put_object(Bucket=event["bucket"], Key=event["object"]["Key"], Body=make_image())
    # When the item runs
    answer = handler("start_backfill_edit").lambda_handler(event, Context(), runtime)
    # Then its edit started, as the trigger would have started it
    assert (answer["outcome"], answer["key"]) == ("started", event["object"]["Key"])


def test_deliver_callback_does_nothing_for_a_job_without_a_callback(runtime: Runtime) -> None:
    # Given the sample success event, as its job published it, its upload carrying no
    # callback-url
    event = load_event("eventbridge_edit_succeeded")
    notification = Notification.model_validate(event["detail"])
    record_outcome(runtime.dynamodb, JOBS_TABLE, notification)
    runtime.s3.put_object(
        Bucket="kontext-images-example", Key="inputs/kitchen-table.jpg", Body=b"x"
    )
    # When the rule's target runs
    answer = handler("deliver_callback").lambda_handler(event, Context(), runtime)
    # Then there was nothing to call back
    assert answer["outcome"] == "none"
