"""template.yaml for the backfill, the spending cap and per-job callbacks: each grants what
its code needs and no more, and what it names exists."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from kontext_pipeline.steps.start_backfill_edit import tally_key

from kontext_tools.local.rules import check_parameters
from tests.conftest import ROOT
from tests.unit.test_template import (
    CFN,
    TEMPLATE,
    actions_of,
    allows,
    object_keys_granted,
    role_statements,
)

BACKFILL_ASL = json.loads((ROOT / "statemachine" / "backfill.asl.json").read_text())


def s3_statements(function: str) -> list[dict[str, Any]]:
    return [s for s in role_statements(function) if any(a.startswith("s3:") for a in actions_of(s))]


@pytest.mark.parametrize("function", ["StartBackfillEditFunction", "DeliverCallbackFunction"])
def test_backfill_and_callbacks_only_read_uploads_under_the_input_prefix(function: str) -> None:
    # Given the role of a function that reads an upload's version id or metadata
    statements = s3_statements(function)
    # When its S3 statements are read
    # Then it may only read (which reads exactly: test_least_privilege.py), never write
    actions = {a for s in statements for a in actions_of(s)}
    assert "s3:GetObject" in actions
    assert actions <= {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    # And it reads under the input prefix only
    assert object_keys_granted(statements, "s3:GetObject") == {"${InputPrefix}*"}


def test_the_backfill_may_run_its_own_map_children_and_list_the_bucket() -> None:
    # Given the backfill state machine's role and its name
    name = TEMPLATE["Resources"]["BackfillStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    statements = CFN["Resources"]["BackfillStateMachineRole"]["Properties"]["Policies"]
    flat = [s for p in statements for s in p["PolicyDocument"]["Statement"]]
    # When its statements are read
    # Then it starts child executions of itself only, and watches and stops only those
    start = next(s for s in flat if "states:StartExecution" in actions_of(s))
    assert start["Resource"]["Fn::Sub"].endswith(":stateMachine:" + name)
    watch = next(s for s in flat if "states:DescribeExecution" in actions_of(s))
    assert sorted(actions_of(watch)) == ["states:DescribeExecution", "states:StopExecution"]
    assert watch["Resource"]["Fn::Sub"].endswith(":execution:" + name + "/*")
    # And it lists the bucket for the ItemReader, reads and writes only its results (the
    # ResultWriter), and invokes only the backfill function
    assert allows(flat, "s3:ListBucket")
    assert object_keys_granted(flat, "s3:GetObject") == {"backfill-results/*"}
    assert object_keys_granted(flat, "s3:PutObject") == {"backfill-results/*"}
    invoked = {json.dumps(s["Resource"]) for s in flat if "lambda:InvokeFunction" in actions_of(s)}
    assert all("StartBackfillEditFunction" in text for text in invoked)


def test_every_substitution_of_the_backfill_definition_is_given() -> None:
    # Given the ${...} names the ASL file uses
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(BACKFILL_ASL)))
    given = TEMPLATE["Resources"]["BackfillStateMachine"]["Properties"]["DefinitionSubstitutions"]
    # When the two are compared
    # Then the template gives each, and nothing more
    assert used == set(given)


def test_the_backfill_lists_with_a_distributed_map_and_counts_each_item_once() -> None:
    # Given the Map state
    state = BACKFILL_ASL["States"]["StartEachEdit"]
    # When it is read
    # Then it reads S3 itself, in distributed mode, at the asked concurrency
    assert state["ItemReader"]["Resource"] == "arn:${Partition}:states:::s3:listObjectsV2"
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["MaxConcurrencyPath"] == "$.max_concurrency"
    # And every item, started or not, ends by adding its outcome to the run's tally,
    # under the key the command line reads (kontext_pipeline.steps.start_backfill_edit.tally_key)
    processor = state["ItemProcessor"]["States"]
    assert processor["StartBackfillEdit"]["Catch"][0]["Next"] == "EditNotStarted"
    assert processor["EditNotStarted"]["Result"] == {"outcome": "failed"}
    assert processor["StartBackfillEdit"]["Next"] == processor["EditNotStarted"]["Next"]
    count = processor[processor["EditNotStarted"]["Next"]]
    assert count["Resource"] == "arn:${Partition}:states:::dynamodb:updateItem"
    assert count["Parameters"]["UpdateExpression"] == "ADD #outcome :one"
    tally = state["ItemSelector"]["tally.$"]
    assert tally == "States.Format('backfill#{}', $$.Execution.Name)"
    assert tally_key("{}") == "backfill#{}"
    # And the children's results go to S3, never inline: a Distributed Map's inline result
    # is capped at 256 KiB, which one word an item passes at about 26,000 objects
    assert state["ResultWriter"]["Resource"] == "arn:${Partition}:states:::s3:putObject"
    assert state["ResultWriter"]["Parameters"]["Prefix"] == "${BackfillResultsPrefix}"


def test_callbacks_run_off_the_pipelines_outcome_events_and_end_in_a_dead_letter_queue() -> None:
    # Given the rule SAM makes from the function's EventBridge event
    rule = next(
        r["Properties"]
        for r in CFN["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
        and r["Properties"]["Targets"][0]["Arn"]
        == {"Fn::GetAtt": ["DeliverCallbackFunction", "Arn"]}
    )
    # When it is read
    # Then it matches exactly the two outcome events
    assert rule["EventPattern"] == {
        "source": ["kontext-pipeline"],
        "detail-type": ["Kontext Edit Succeeded", "Kontext Edit Failed"],
    }
    # And a delivery that fails after Lambda's retries lands in the callbacks' queue
    config = TEMPLATE["Resources"]["DeliverCallbackFunction"]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["CallbackDeadLetterQueue", "Arn"]
    }
    assert allows(role_statements("DeliverCallbackFunction"), "sqs:SendMessage")


def test_the_deployable_template_cannot_open_loopback_to_callbacks() -> None:
    # Given the template users deploy, as text (parameters, environments, everything)
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    # Then nothing in it can let a callback reach the function's own loopback (on Lambda,
    # the Runtime API at 127.0.0.1:9001): only the local run sets that, for its receivers
    assert "CALLBACK_ALLOW_LOOPBACK" not in text
    assert "loopback" not in " ".join(TEMPLATE["Parameters"]).lower()
    from kontext_tools.local.stand_up import LOCAL_ENVIRONMENT

    assert LOCAL_ENVIRONMENT["CALLBACK_ALLOW_LOOPBACK"] == "true"


def test_the_daily_cap_alarm_fires_at_80_percent_of_the_cap_and_only_with_a_cap() -> None:
    # Given the alarm
    alarm = TEMPLATE["Resources"]["DailyImageCapAlarm"]
    # When it is read
    # Then it exists only with a cap, and compares a day's images with 80% of it
    assert alarm["Condition"] == "HasDailyImageCap"
    properties = alarm["Properties"]
    # (which day's images it reads: test_template_hygiene.py)
    _, share = properties["Metrics"]
    assert share["Expression"] == {"Fn::Sub": "100 * images / ${MaxImagesPerDay}"}
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (
        80,
        "GreaterThanOrEqualToThreshold",
    )


@pytest.mark.parametrize("value", ["0", "1", "5000"])
def test_the_caps_take_zero_for_none_and_whole_numbers(value: str) -> None:
    # Given no cap (0) or a whole number
    # When deployed / Then the deployer accepts it for both caps
    check_parameters(TEMPLATE, {"MaxImagesPerDay": value, "MaxConcurrentRequests": value})
