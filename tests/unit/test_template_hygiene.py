"""What a reviewer of template.yaml expects beyond what AWS enforces: logs that expire,
stateful resources with a stated fate, no hard-coded partition, no event dropped in
silence, a cap alarm on the cap's own day, and a key CloudWatch may use only for alarms."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ROOT
from tests.unit.test_template import CFN, TEMPLATE

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
STATEFUL = (
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
)


def of_type(kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in RESOURCES.items() if resource["Type"] == kind}


def test_every_function_logs_to_a_group_kept_for_the_retention_parameter() -> None:
    # Given every function of the template (there must be some, or this checks nothing)
    functions = of_type("AWS::Serverless::Function")
    assert len(functions) >= 9
    assert TEMPLATE["Parameters"]["LogRetentionDays"]["Default"] == 30
    for name, function in functions.items():
        # When its log group is looked up
        group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = RESOURCES[group_id]
        # Then it is a group of its own, under the function's condition, kept as configured
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group.get("Condition") == function.get("Condition"), name
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    groups = [f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions.values()]
    assert len(set(groups)) == len(groups)


def test_every_stateful_resource_states_what_deletion_and_replacement_do() -> None:
    # Given the resources that hold data (there must be some of each kind we use)
    stateful = {name: r for name, r in RESOURCES.items() if r["Type"] in STATEFUL}
    assert {r["Type"] for r in stateful.values()} == set(STATEFUL)
    # Then each names its DeletionPolicy and UpdateReplacePolicy rather than the default
    unstated = [
        name
        for name, resource in stateful.items()
        if not {"DeletionPolicy", "UpdateReplacePolicy"} <= set(resource)
    ]
    assert unstated == []


def test_no_arn_names_a_partition_literally() -> None:
    # Given the template and the definitions it deploys
    texts = [ROOT / "template.yaml", *sorted((ROOT / "statemachine").glob("*.json"))]
    # Then every ARN takes the stack's partition (aws-cn and aws-us-gov deploy too)
    assert [path.name for path in texts if "arn:aws:" in path.read_text(encoding="utf-8")] == []


def test_job_events_eventbridge_cannot_deliver_wait_in_a_queue_it_may_write() -> None:
    # Given the rule that hands job-ended events to DeliverCallback, as SAM translates it
    rules = [r for r in CFN["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 1
    (target,) = rules[0]["Properties"]["Targets"]
    # Then its target has a dead-letter queue and a bounded retry policy
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["JobEventsDeadLetterQueue", "Arn"]}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 24 * 3600
    # And the queue lets EventBridge in for that rule only, with a key EventBridge can use
    queue = RESOURCES["JobEventsDeadLetterQueue"]["Properties"]
    assert queue.get("SqsManagedSseEnabled") is True
    assert "KmsMasterKeyId" not in queue
    (grant,) = RESOURCES["JobEventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert grant["Principal"] == {"Service": "events.amazonaws.com"}
    rule_name = rules[0]["Properties"]["Name"]
    assert rule_name == {"Fn::Sub": "${AWS::StackName}-job-ended"}
    assert grant["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"].endswith(
        ":rule/${JobEventsBus}/${AWS::StackName}-job-ended"
    )
    # And the callbacks' alarm counts what waits there too
    alarm = RESOURCES["CallbackDeadLetterAlarm"]["Properties"]
    queues = [
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for m in alarm["Metrics"]
        if "MetricStat" in m
    ]
    assert sorted(queues) == ["CallbackDeadLetterQueue", "JobEventsDeadLetterQueue"]


def test_the_daily_cap_alarm_watches_the_cap_s_own_utc_day_counter() -> None:
    # Given the daily-cap alarm
    alarm = RESOURCES["DailyImageCapAlarm"]["Properties"]
    (watched,) = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    # Then it reads the day's total as the budget counts it (which restarts at 00:00 UTC),
    # not a sum over a rolling window of a day
    assert watched["Metric"]["MetricName"] == "ImagesSpentToday"
    assert watched["Stat"] == "Maximum"
    assert watched["Period"] < 24 * 3600


def test_cloudwatch_may_use_the_alarms_key_only_for_this_account_s_alarms() -> None:
    # Given the alarms topic's key policy
    statements = RESOURCES["AlarmsTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [
        s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    # Then the grant holds only for alarms of this account and region
    source = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source == "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"


def test_no_request_may_wait_longer_than_its_presigned_input_lives() -> None:
    from kontext_pipeline.core.settings_limits import MAX_QUEUE_WAIT_SECONDS

    from kontext_tools.local.rules import ParameterRefusedError, check_parameters

    # Given the template's defaults, which must deploy, and a wait of the settings' most
    check_parameters(TEMPLATE, {})
    check_parameters(TEMPLATE, {"QueueWaitSeconds": str(MAX_QUEUE_WAIT_SECONDS)})
    # When a deployment asks for a longer queue wait
    for wait in ("3601", "14400", "86400"):
        # Then CloudFormation's pattern refuses it before anything is created
        with pytest.raises(ParameterRefusedError, match="QueueWaitSeconds"):
            check_parameters(TEMPLATE, {"QueueWaitSeconds": wait})
    # And short waits (the tests' 5 s) deploy
    check_parameters(TEMPLATE, {"QueueWaitSeconds": "5"})


def test_only_the_pipeline_s_publishers_may_put_events_on_its_bus() -> None:
    # Given the pipeline's bus, its policy and the callbacks' rule
    policy = RESOURCES["JobEventsBusOnlyPublishers"]["Properties"]
    statement = policy["Statement"]
    # Then every principal but the publishing functions' roles is denied PutEvents
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Deny",
        "*",
        "events:PutEvents",
    )
    allowed = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    roles = sorted(ref["Fn::GetAtt"][0] for ref in allowed)
    assert roles == [
        "CollectOutputsFunctionRole",
        "DeliverCallbackFunctionRole",
        "ReportFailureFunctionRole",
    ]
    # And those functions, and only they, publish to it; the callbacks' rule listens there
    publishers = sorted(
        name
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and resource["Properties"].get("Environment", {}).get("Variables", {}).get("EVENT_BUS_NAME")
        == {"Ref": "JobEventsBus"}
    )
    assert [f"{name}Role" for name in publishers] == roles
    rule = RESOURCES["DeliverCallbackFunction"]["Properties"]["Events"]["JobEnded"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "JobEventsBus"}
