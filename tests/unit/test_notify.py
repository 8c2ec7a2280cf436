"""The notifier: one SNS message and one EventBridge event per job and status, against moto
(SNS -> SQS subscription, an EventBridge rule -> SQS target, the jobs table)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kontext_pipeline.core.errors import NotificationError
from kontext_pipeline.core.notification import FailureDetail, Notification
from kontext_pipeline.jobs.published import recorded_outcome
from kontext_pipeline.notifications.publish import Notifier

from tests.conftest import JOBS_TABLE, load_event


def queue_for(aws: Any, name: str) -> tuple[str, str]:
    """A new SQS queue's URL and ARN."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def received(aws: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message body waiting in the queue, as JSON."""
    answer = aws.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in answer.get("Messages", [])]


@pytest.fixture
def outlets(aws: Any, jobs_table: Any) -> dict[str, Any]:
    """A topic with a queue subscribed, and a rule sending the pipeline's events to a queue."""
    sns, events = aws.client("sns"), aws.client("events")
    topic_arn = sns.create_topic(Name="jobs")["TopicArn"]
    topic_queue, topic_queue_arn = queue_for(aws, "topic-copy")
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=topic_queue_arn)
    bus_queue, bus_queue_arn = queue_for(aws, "bus-copy")
    events.put_rule(Name="outcomes", EventPattern=json.dumps({"source": ["kontext-pipeline"]}))
    events.put_targets(Rule="outcomes", Targets=[{"Id": "queue", "Arn": bus_queue_arn}])
    return {"topic_arn": topic_arn, "topic_queue": topic_queue, "bus_queue": bus_queue}


def notifier_for(aws: Any, jobs_table: Any, topic_arn: str, bus: str = "default") -> Notifier:
    return Notifier(
        sns=aws.client("sns"),
        topic_arn=topic_arn,
        events=aws.client("events"),
        event_bus_name=bus,
        dynamodb=jobs_table,
        table_name=JOBS_TABLE,
    )


def succeeded() -> Notification:
    return Notification.model_validate(load_event("eventbridge_edit_succeeded")["detail"])


def failed() -> Notification:
    failure = FailureDetail(reason="not_an_image", error="InvalidInputError", message="no image")
    return succeeded().model_copy(update={"status": "FAILED", "failure": failure})


def test_a_notification_goes_to_the_topic_with_the_attributes_subscribers_filter_on(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a notifier on a topic a queue subscribes to
    notifier = notifier_for(aws, jobs_table, outlets["topic_arn"])
    # When a failed job's notification is published
    message_id = notifier.publish_once(failed())
    # Then the topic delivered it once: the notification as body, subject and attributes set
    [envelope] = received(aws, outlets["topic_queue"])
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == "kontext-pipeline FAILED: inputs/kitchen-table.jpg"
    assert Notification.model_validate_json(envelope["Message"]) == failed()
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    assert attributes == {
        "status": "FAILED",
        "bucket": "kontext-images-example",
        "has_nsfw_concepts": "false",
        "reason": "not_an_image",
    }


def test_the_same_notification_goes_on_the_bus_as_an_event(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a notifier on the default bus, where a rule forwards the pipeline's events
    notifier = notifier_for(aws, jobs_table, outlets["topic_arn"])
    # When a successful job's notification is published
    notifier.publish_once(succeeded())
    # Then one event names the outcome and the bucket, and carries the notification
    [event] = received(aws, outlets["bus_queue"])
    assert (event["source"], event["detail-type"]) == ("kontext-pipeline", "Kontext Edit Succeeded")
    assert event["resources"] == ["arn:aws:s3:::kontext-images-example"]
    assert Notification.model_validate(event["detail"]) == succeeded()


def test_the_published_notification_is_recorded_as_the_event_carries_it(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a notifier / When a successful job's notification is published
    notifier_for(aws, jobs_table, outlets["topic_arn"]).publish_once(succeeded())
    # Then the jobs table holds exactly the event's detail (what a callback is built from)
    [event] = received(aws, outlets["bus_queue"])
    assert recorded_outcome(jobs_table, JOBS_TABLE, succeeded().source) == event["detail"]


def test_a_second_publish_of_the_same_notification_is_not_sent_again(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a notification already published (a task retried after its publish went out)
    first = notifier_for(aws, jobs_table, outlets["topic_arn"]).publish_once(succeeded())
    # When it is published again, by another notifier on the same jobs table
    again = notifier_for(aws, jobs_table, outlets["topic_arn"]).publish_once(succeeded())
    # Then the first message id comes back, and the topic and the bus each got one message
    assert again == first
    assert len(received(aws, outlets["topic_queue"])) == 1
    assert len(received(aws, outlets["bus_queue"])) == 1


def test_the_same_job_publishes_again_for_another_status(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a job's success already published
    notifier = notifier_for(aws, jobs_table, outlets["topic_arn"])
    first = notifier.publish_once(succeeded())
    # When the same job's failure is published
    second = notifier.publish_once(failed())
    # Then it is a message of its own
    assert second != first
    assert len(received(aws, outlets["topic_queue"])) == 2


def test_a_topic_that_does_not_exist_is_a_notification_error(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a notifier on a topic that is not there
    missing = outlets["topic_arn"].replace(":jobs", ":gone")
    notifier = notifier_for(aws, jobs_table, missing)
    # When a notification is published / Then it fails as notification_failed, naming the topic
    with pytest.raises(NotificationError, match=r"SNS publish to .*:gone failed") as caught:
        notifier.publish_once(succeeded())
    assert caught.value.reason == "notification_failed"


def test_a_bus_that_does_not_exist_is_a_notification_error(
    aws: Any, jobs_table: Any, outlets: dict[str, Any]
) -> None:
    # Given a notifier whose event bus is not there
    notifier = notifier_for(aws, jobs_table, outlets["topic_arn"], bus="gone")
    # When a notification is published / Then it fails as notification_failed, naming the bus
    with pytest.raises(NotificationError, match="EventBridge put to gone failed") as caught:
        notifier.publish_once(succeeded())
    assert caught.value.reason == "notification_failed"
