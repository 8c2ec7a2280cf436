"""The state machines as Step Functions receives them: every rendering of each definition
is one AWS accepts (AWS's own validators and the reachability walk), and what a job pays
for in state transitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kontext_tools.local.stack import LocalStack, load_template
from kontext_tools.local.stack.asl_checks import (
    DefinitionRefusedError,
    check_definition,
    render_definition,
    transition_problems,
)
from kontext_tools.local.stack.intrinsics import Resolver
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
STATE_MACHINES = {
    logical_id: resource["Properties"]
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::StateMachine"
}
ASL = json.loads((ROOT / "statemachine" / "edit_pipeline.asl.json").read_text(encoding="utf-8"))
AWS_VALIDATORS = "AWS's ASL validators"


def parameter_values() -> list[dict[str, str]]:
    """The template's defaults, once per value of each parameter with AllowedValues (the
    parameters that can change what a definition renders to)."""
    parameters = TEMPLATE["Parameters"]
    defaults = {name: str(spec.get("Default", "")) for name, spec in parameters.items()}
    return [defaults] + [
        {**defaults, name: str(value)}
        for name, spec in parameters.items()
        for value in spec.get("AllowedValues", [])
        if str(value) != defaults[name]
    ]


def rendered(logical_id: str, parameters: dict[str, str]) -> str:
    """The definition as CloudFormation hands it to Step Functions, with stand-in names and
    ARNs for the resources it names."""
    stack = LocalStack(name="kontext-render", template=TEMPLATE)
    for resource_id in TEMPLATE["Resources"]:
        stack.physical_ids[resource_id] = f"kontext-render-{resource_id}"
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{resource_id}"
        stack.attributes[resource_id] = {"Arn": arn}
    properties = STATE_MACHINES[logical_id]
    substitutions = Resolver(stack, parameters).resolve(properties["DefinitionSubstitutions"])
    text = (ROOT / properties["DefinitionUri"]).read_text(encoding="utf-8")
    return render_definition(text, substitutions)


@pytest.mark.parametrize("logical_id", sorted(STATE_MACHINES))
@pytest.mark.parametrize("parameters", parameter_values())
def test_every_rendering_of_every_definition_is_one_aws_accepts(
    logical_id: str, parameters: dict[str, str]
) -> None:
    # Given a state machine rendered with the template's defaults or another allowed value
    definition = rendered(logical_id, parameters)
    # When AWS's validators and the reachability walk check it (make test installs the
    # validators: make asl-tools)
    checks = check_definition(logical_id, definition)
    # Then both ran and neither found anything (check_definition raises on a problem)
    assert checks == ["reachability walk", AWS_VALIDATORS]
    assert "${" not in definition


def test_the_default_deployment_s_definition_reaches_the_webhook_state() -> None:
    # Given the template's defaults (poll mode), which once left AwaitWebhook unreachable
    definition = json.loads(rendered("EditStateMachine", parameter_values()[0]))
    # When the walk looks for states nothing leads to / Then there are none
    assert transition_problems(definition) == []
    assert "AwaitWebhook" in definition["States"]


def with_states_nothing_reaches() -> dict[str, Any]:
    """The edit definition with SubmitEdit and CheckStatus skipping the Choice: as in the
    poll-mode rendering AWS refused, nothing leads to AwaitWebhook (nor to the Choice)."""
    definition: dict[str, Any] = json.loads(rendered("EditStateMachine", parameter_values()[0]))
    definition["States"]["SubmitEdit"]["Next"] = "WaitForModel"
    definition["States"]["CheckStatus"]["Next"] = "CollectOutputs"
    return definition


def test_aws_validators_refuse_an_unreachable_state_with_aws_s_message() -> None:
    # Given a definition with states nothing reaches
    definition = with_states_nothing_reaches()
    # When it is checked / Then both of AWS's validators and the walk name the state
    with pytest.raises(DefinitionRefusedError) as refused:
        check_definition("edit", json.dumps(definition))
    message = str(refused.value)
    assert "MISSING_TRANSITION_TARGET: State RouteByStatus is not reachable" in message
    assert "The state cannot be reached" in message
    assert 'MISSING_TRANSITION_TARGET: State "AwaitWebhook" is not reachable' in message


def test_the_walk_checks_each_nested_scope_and_missing_targets() -> None:
    # Given a Map whose processor has an orphan, a Parallel branch with a missing target,
    # and a Choice whose Default names nothing
    definition: dict[str, Any] = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {
                        "Work": {"Type": "Pass", "End": True},
                        "Orphan": {"Type": "Pass", "End": True},
                    },
                },
                "Next": "Both",
            },
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "Next": "Gone"}}}
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Route"}],
                "End": True,
            },
            "Route": {"Type": "Choice", "Choices": [], "Default": "Nowhere"},
        },
    }
    # When the walk runs
    problems = transition_problems(definition)
    # Then each problem is found in its own scope, worded as Step Functions words it
    assert problems == [
        'MISSING_TRANSITION_TARGET: Missing "Next" target: Nowhere',
        'MISSING_TRANSITION_TARGET: State "Orphan" is not reachable',
        'MISSING_TRANSITION_TARGET: Missing "Next" target: Gone',
    ]


def test_the_local_stack_refuses_an_unreachable_state_before_moto_sees_it(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from kontext_tools.local.stack import deploy_stack
    from kontext_tools.session_clients import SessionClients

    # Given a template whose state machine has a state nothing reaches
    definition = with_states_nothing_reaches()
    (tmp_path / "machine.asl.json").write_text(json.dumps(definition), encoding="utf-8")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Edit:\n"
        "    Type: AWS::Serverless::StateMachine\n"
        "    Properties:\n"
        "      Name: refused-edit\n"
        "      DefinitionUri: machine.asl.json\n",
        encoding="utf-8",
    )
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        # When the local stack deploys it
        with pytest.raises(DefinitionRefusedError, match="State RouteByStatus is not reachable"):
            deploy_stack(tmp_path / "template.yaml", clients=SessionClients(session))
        # Then moto never got the definition
        assert session.client("stepfunctions").list_state_machines()["stateMachines"] == []


def poll_mode_path(definition: dict[str, Any]) -> list[str]:
    """The states a poll-mode job whose first look finds it done passes through."""
    job = {"completion_mode": "poll", "polls": 0, "status": "IN_QUEUE"}
    return _walk(definition, job, {"CheckStatus": {"polls": 1, "status": "COMPLETED"}})


def webhook_mode_path(definition: dict[str, Any]) -> list[str]:
    """The states a webhook-mode job whose webhook arrives in time passes through."""
    job = {"completion_mode": "webhook", "polls": 0, "status": "IN_QUEUE"}
    return _walk(definition, job, {})


def _walk(definition: dict[str, Any], job: dict[str, Any], updates: dict[str, Any]) -> list[str]:
    path, name = [], definition["StartAt"]
    while True:
        path.append(name)
        state = definition["States"][name]
        job = {**job, **updates.get(name, {})}
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            return path
        name = state["Next"] if state["Type"] != "Choice" else _choose(state, job)


def _choose(state: dict[str, Any], job: dict[str, Any]) -> str:
    for rule in state["Choices"]:
        tests = rule.get("And", [rule])
        if all(_holds(test, job) for test in tests):
            return str(rule["Next"])
    return str(state["Default"])


def _holds(test: dict[str, Any], job: dict[str, Any]) -> bool:
    value = job[test["Variable"].removeprefix("$.")]
    if "StringEquals" in test:
        return bool(value == test["StringEquals"])
    return bool(value == test["NumericEquals"])


def test_a_job_pays_as_many_transitions_as_with_the_deploy_time_choice() -> None:
    # Given the one edit definition both modes run
    # When a typical job runs in each mode (poll: done at the first look; webhook: in time)
    poll = poll_mode_path(ASL)
    webhook = webhook_mode_path(ASL)
    # Then poll mode costs 6 transitions and webhook mode 4, as with the earlier
    # deploy-time choice, and a webhook-mode job never polls before its webhook
    assert poll == [
        "SubmitEdit",
        "RouteByStatus",
        "WaitForModel",
        "CheckStatus",
        "RouteByStatus",
        "CollectOutputs",
    ]
    assert webhook == ["SubmitEdit", "RouteByStatus", "AwaitWebhook", "CollectOutputs"]


def test_a_webhook_that_never_comes_falls_back_to_polling_and_not_to_waiting_again() -> None:
    # Given a webhook-mode job after its webhook wait timed out and one CheckStatus ran
    job = {"completion_mode": "webhook", "polls": 1, "status": "IN_PROGRESS"}
    # When the Choice after CheckStatus routes it
    after_check = _choose(ASL["States"]["RouteByStatus"], job)
    # Then it goes on polling; the timeout itself leads to WaitForModel
    assert after_check == "WaitForModel"
    timeout = ASL["States"]["AwaitWebhook"]["Catch"][0]
    assert (timeout["ErrorEquals"], timeout["Next"]) == (["States.Timeout"], "WaitForModel")


def test_every_substitution_the_definitions_name_is_defined_and_no_arn_names_a_partition() -> None:
    for properties in STATE_MACHINES.values():
        # Given a definition's ${...} placeholders
        text = (ROOT / properties["DefinitionUri"]).read_text(encoding="utf-8")
        names = {part.split("}", 1)[0] for part in text.split("${")[1:]}
        # Then the template defines each, and ARNs take the stack's partition
        assert names <= set(properties["DefinitionSubstitutions"])
        assert "arn:aws:" not in text
