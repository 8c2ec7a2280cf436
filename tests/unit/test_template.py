"""template.yaml grants what the code needs and no more, and its alarms can reach someone.

Checked on the template itself and on SAM's translation of it (where policy templates are
expanded into the statements IAM will actually see).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest
from kontext_pipeline.core.config import PipelineSettings
from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous

from kontext_tools.local.rules import ParameterRefusedError, check_parameters
from kontext_tools.local.stack import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
ALARM_ACTIONS = ("AlarmActions", "OKActions", "InsufficientDataActions")


def translated() -> dict[str, Any]:
    """SAM -> CloudFormation, as `sam deploy` does (local paths become placeholders)."""
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(TEMPLATE)
    for logical_id, resource in sam["Resources"].items():
        properties = resource.get("Properties", {})
        if "CodeUri" in properties:
            properties["CodeUri"] = f"s3://placeholder/{logical_id}.zip"
        if "ContentUri" in properties:
            properties["ContentUri"] = f"s3://placeholder/{logical_id}.zip"
        if "DefinitionUri" in properties:
            properties["Definition"] = json.loads(
                (ROOT / properties.pop("DefinitionUri")).read_text(encoding="utf-8")
            )

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    # Webhook mode, so the conditional webhook function is in the translation too.
    result: dict[str, Any] = transform(sam, {"CompletionMode": "webhook"}, NoManagedPolicies())
    return result


CFN = translated()


def role_statements(function: str) -> list[dict[str, Any]]:
    role = CFN["Resources"][f"{function}Role"]["Properties"]
    return [
        statement
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def object_keys_granted(statements: list[dict[str, Any]], action: str) -> set[str]:
    """The key patterns (after the bucket) of the statements that grant `action`."""
    return {
        statement["Resource"]["Fn::Sub"][0].split("/", 1)[1]
        for statement in statements
        if action in actions_of(statement)
    }


def allows(statements: list[dict[str, Any]], action: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatchcase(action.lower(), granted.lower()) for granted in actions_of(statement))
        for statement in statements
    )


# --- alarms -----------------------------------------------------------------------------


def undeliverable_alarm_actions(template: dict[str, Any]) -> list[str]:
    """Alarm actions that name a topic CloudWatch cannot publish to, as `alarm -> topic`."""
    resources = template["Resources"]
    refused = []
    for alarm_id, alarm in resources.items():
        if alarm["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for field in ALARM_ACTIONS:
            for action in alarm["Properties"].get(field, []):
                topic_id = action.get("Ref") if isinstance(action, dict) else None
                topic = resources.get(topic_id or "", {})
                if topic.get("Type") != "AWS::SNS::Topic" or not cloudwatch_can_publish(
                    resources, topic
                ):
                    refused.append(f"{alarm_id} -> {topic_id or action}")
    return refused


def cloudwatch_can_publish(resources: dict[str, Any], topic: dict[str, Any]) -> bool:
    key = topic["Properties"].get("KmsMasterKeyId")
    if key is None:
        return True  # no SSE: nothing for CloudWatch to be allowed
    # An alias or a key from outside the template (alias/aws/sns above all) has a policy
    # this template cannot show to allow CloudWatch.
    key_id = key.get("Ref") if isinstance(key, dict) else None
    key_resource = resources.get(key_id or "", {})
    if key_resource.get("Type") != "AWS::KMS::Key":
        return False
    statements = [
        statement
        for statement in key_resource["Properties"]["KeyPolicy"]["Statement"]
        if "cloudwatch.amazonaws.com" in _service_principals(statement)
    ]
    return allows(statements, "kms:Decrypt") and allows(statements, "kms:GenerateDataKey")


def _service_principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal", {})
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    return [services] if isinstance(services, str) else list(services)


def test_every_alarm_action_targets_a_topic_cloudwatch_can_publish_to() -> None:
    # Given the template's alarms (there must be some, or this checks nothing)
    alarms = [r for r in TEMPLATE["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 4
    assert all(alarm["Properties"].get("AlarmActions") for alarm in alarms)
    # When each action's topic and its key are looked up
    # Then each action's topic is unencrypted or uses a key whose policy lets CloudWatch in
    assert undeliverable_alarm_actions(TEMPLATE) == []


def test_the_aws_managed_sns_key_is_recognised_as_undeliverable() -> None:
    # Given the alarms topic encrypted with the AWS-managed key, as it once was
    template = copy.deepcopy(TEMPLATE)
    template["Resources"]["AlarmsTopic"]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"
    # When the alarms' actions are checked
    # Then every alarm is reported: CloudWatch cannot use that key
    alarms = [k for k, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert undeliverable_alarm_actions(template) == [f"{alarm} -> AlarmsTopic" for alarm in alarms]


def test_a_key_that_does_not_let_cloudwatch_in_is_undeliverable() -> None:
    # Given the alarms key with CloudWatch's statement removed
    template = copy.deepcopy(TEMPLATE)
    policy = template["Resources"]["AlarmsTopicKey"]["Properties"]["KeyPolicy"]
    policy["Statement"] = [
        s for s in policy["Statement"] if "cloudwatch.amazonaws.com" not in _service_principals(s)
    ]
    # When the alarms' actions are checked
    # Then the alarms are reported
    assert undeliverable_alarm_actions(template) != []


# --- S3 -----------------------------------------------------------------------------------


def test_collecting_outputs_may_abort_a_multipart_upload_and_write_only_outputs() -> None:
    # Given the role SAM generates for CollectOutputs
    statements = role_statements("CollectOutputsFunction")
    # When its statements are read
    # Then a failed multipart copy can clean up after itself
    assert allows(statements, "s3:AbortMultipartUpload")
    assert allows(statements, "s3:PutObject")
    # And object writes are confined to the output prefix
    for statement in statements:
        if any(action.startswith("s3:") and "Object" in action for action in actions_of(statement)):
            text, _ = statement["Resource"]["Fn::Sub"]
            assert text.endswith("/${OutputPrefix}*"), text


def test_reporting_a_failure_may_read_back_the_upload_and_nothing_else_in_s3() -> None:
    # Given the role SAM generates for ReportFailure
    statements = role_statements("ReportFailureFunction")
    # When its statements are read
    # Then it can read the upload (HeadObject pinned to its version) and its sidecars
    assert allows(statements, "s3:GetObject")
    assert allows(statements, "s3:GetObjectVersion")
    assert allows(statements, "s3:ListBucket")
    # And it never writes
    s3_actions = {a for s in statements for a in actions_of(s) if a.startswith("s3:")}
    assert s3_actions == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    # And only uploads (and their sidecars) under the input prefix can be read
    assert object_keys_granted(statements, "s3:GetObject") == {"${InputPrefix}*"}


def test_no_function_may_change_object_acls_or_bucket_lifecycle() -> None:
    # Given every function's role
    roles = [r for r in CFN["Resources"] if r.endswith("FunctionRole")]
    assert roles
    # When their statements are read
    # Then none may rewrite ACLs (the bucket enforces owner ACLs) or the bucket's lifecycle
    # (the template's own): SAM's S3WritePolicy and S3CrudPolicy would grant both
    for role in roles:
        statements = role_statements(role.removesuffix("Role"))
        for action in ("s3:PutObjectAcl", "s3:PutLifecycleConfiguration"):
            assert not allows(statements, action), f"{role} may {action}"


def test_only_the_images_bucket_may_invoke_the_trigger() -> None:
    # Given every permission S3 holds on a function (SAM's S3 events name only the account)
    permissions = [
        resource["Properties"]
        for resource in CFN["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    assert permissions
    bucket_name = TEMPLATE["Resources"]["ImagesBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    # When each permission's source is read
    for permission in permissions:
        # Then each names the images bucket's ARN, built from the same name
        text, variables = permission["SourceArn"]["Fn::Sub"]
        assert text == "arn:${AWS::Partition}:s3:::" + bucket_name[0]
        assert variables == bucket_name[1]


def test_the_bucket_notifies_the_trigger_only_for_the_input_prefix() -> None:
    # Given the bucket's own notification, which replaced SAM's S3 event
    bucket = CFN["Resources"]["ImagesBucket"]
    (notification,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    # When it is read
    # Then it invokes the trigger, for uploads under the input prefix only
    assert notification["Function"] == {"Fn::GetAtt": ["StartEditFunction", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": {"Ref": "InputPrefix"}}
    ]
    # And the permission comes first: S3 checks it when the notification is put
    assert "StartEditInvokedByImagesBucket" in bucket["DependsOn"]


# --- webhooks and Step Functions callbacks ----------------------------------------------


def dynamodb_calls_of_the_rendezvous() -> set[str]:
    """The DynamoDB operations webhook_rendezvous.py makes, as IAM action names."""
    source = inspect.getsource(WebhookRendezvous)
    calls = set(re.findall(r"self\.dynamodb\.([a-z_]+)\(", source))
    return {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}


@pytest.mark.parametrize("function", ["AwaitWebhookFunction", "ReceiveWebhookFunction"])
def test_webhook_functions_get_only_the_dynamodb_actions_they_call(function: str) -> None:
    # Given what the code calls (the rendezvous is all these functions do with the table)
    called = dynamodb_calls_of_the_rendezvous()
    assert called == {"dynamodb:UpdateItem"}
    # When the role's DynamoDB statements are read
    # Then the role grants exactly those, on the jobs table
    granted = {
        action
        for statement in role_statements(function)
        for action in actions_of(statement)
        if action.startswith("dynamodb:")
    }
    assert granted == called
    resources = [
        s["Resource"] for s in role_statements(function) if actions_of(s)[0].startswith("dynamodb:")
    ]
    assert resources == [{"Fn::GetAtt": ["JobsTable", "Arn"]}]


@pytest.mark.parametrize("function", ["AwaitWebhookFunction", "ReceiveWebhookFunction"])
def test_callbacks_are_scoped_to_the_edit_state_machine(function: str) -> None:
    # Given the statement that lets the function complete a waiting task
    (statement,) = [
        s for s in role_statements(function) if any(a.startswith("states:") for a in actions_of(s))
    ]
    assert sorted(actions_of(statement)) == ["states:SendTaskFailure", "states:SendTaskSuccess"]
    # When its resource is read
    # Then it names the state machine the template creates, by the same name
    name = TEMPLATE["Resources"]["EditStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    expected = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
    assert statement["Resource"] == {"Fn::Sub": expected + name}


# --- parameters and rules -----------------------------------------------------------------


def test_the_layer_is_named_per_stack() -> None:
    # Given the layer's name
    layer = TEMPLATE["Resources"]["CommonLayer"]["Properties"]
    # When it is read
    # Then it carries the stack's, so two stacks in one account publish two layers
    assert "${AWS::StackName}" in layer["LayerName"]["Fn::Sub"]


def environment_variables() -> dict[str, Any]:
    """Every variable the template sets, globally or on a function, with its value."""
    variables = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    for resource in TEMPLATE["Resources"].values():
        variables.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    return variables


def integer_parameters() -> list[str]:
    """Parameters whose environment variable the settings model reads as an integer."""
    names = set()
    for variable, value in environment_variables().items():
        field = PipelineSettings.model_fields.get(variable.lower())
        if field is not None and field.annotation is int and isinstance(value, dict):
            names.add(value["Ref"])
    return sorted(names)


def test_the_globals_set_only_what_every_function_reads() -> None:
    # Given the environment every function gets
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    # When its variables are read
    # Then it is Powertools' own and the model path (each metric's dimension): the rest is
    # set per function, only where it is read
    assert {name for name in variables if not name.startswith("POWERTOOLS_")} == {"FAL_MODEL_PATH"}


@pytest.mark.parametrize(
    ("function", "variable"),
    [
        ("StartEditFunction", "STATE_MACHINE_ARN"),
        ("StartEditFunction", "INPUT_PREFIX"),
        ("SubmitEditFunction", "JOBS_TABLE"),
        ("SubmitEditFunction", "MAX_IMAGES_PER_DAY"),
        ("CheckStatusFunction", "POLL_MAX_SECONDS"),
        ("CollectOutputsFunction", "OUTPUT_URL_HOSTS"),
        ("ReportFailureFunction", "TOPIC_ARN"),
        ("ReceiveWebhookFunction", "WEBHOOK_JWKS_URL"),
        ("DeliverCallbackFunction", "CALLBACK_URL_HOSTS"),
    ],
)
def test_a_function_gets_the_settings_it_reads(function: str, variable: str) -> None:
    # Given a function and a setting its step reads
    properties = TEMPLATE["Resources"][function]["Properties"]
    # When its environment is read
    # Then its own environment sets it
    assert variable in properties["Environment"]["Variables"]


def test_a_function_gets_no_settings_it_does_not_read() -> None:
    # Given the functions that never call the model or publish
    resources = TEMPLATE["Resources"]
    quiet = ("StartEditFunction", "AwaitWebhookFunction", "DeliverCallbackFunction")
    # When their environments are read
    # Then none of them is given the model's key or the topic
    for function in quiet:
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert not {"FAL_KEY_SECRET_ID", "TOPIC_ARN"} & set(variables), function


def test_there_are_integer_parameters_to_check() -> None:
    # Given the parameters the settings read as integers
    # When they are collected from every function's environment
    # Then there are some, or the tests below would check nothing
    assert sorted(integer_parameters()) == [
        "DeadlineSeconds",
        "MaxConcurrentRequests",
        "MaxImagesPerDay",
        "QueueWaitSeconds",
        "WebhookWaitSeconds",
    ]


@pytest.mark.parametrize("name", integer_parameters())
@pytest.mark.parametrize("value", ["2.5", "10.0", "-5", "1e3", " 10", ""])
def test_integer_parameters_refuse_what_is_not_a_whole_number(name: str, value: str) -> None:
    # Given a value that is not a whole number
    # When it is deployed
    # Then it is refused before anything is created; the settings would refuse it only at
    # cold start, after a deploy that looked fine
    with pytest.raises(ParameterRefusedError, match=name):
        check_parameters(TEMPLATE, {name: value})


@pytest.mark.parametrize("name", integer_parameters())
def test_integer_parameters_accept_their_default_and_the_settings_agree(name: str) -> None:
    # Given the parameter's constraint
    spec = TEMPLATE["Parameters"][name]
    # When it is checked as the deployer checks it
    # Then its default and a day's worth of seconds deploy
    check_parameters(TEMPLATE, {name: spec["Default"]})
    # and the most the settings take (a day, or an hour for the queue wait: a presigned
    # input dies after it, test_template_hygiene.py)
    most = {"QueueWaitSeconds": "3600"}.get(name, "86400")
    check_parameters(TEMPLATE, {name: most})
    # And the smallest value the pattern takes is one the settings accept
    variable = next(key for key, value in environment_variables().items() if value == {"Ref": name})
    smallest = next(str(n) for n in range(100) if re.fullmatch(spec["AllowedPattern"], str(n)))
    PipelineSettings(**{variable.lower(): smallest})


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [("in/", "in/"), ("in/", "in/out/"), ("in/out/", "in/"), ("a/in/", "a/in/x/")],
)
def test_overlapping_prefixes_are_refused_at_deploy_time(inputs: str, outputs: str) -> None:
    # Given prefixes where one starts with the other (config.py refuses them at cold start)
    # When they are deployed
    # Then the parameter patterns or the Rule refuse them first
    with pytest.raises(ParameterRefusedError, match="Prefix"):
        check_parameters(TEMPLATE, {"InputPrefix": inputs, "OutputPrefix": outputs})


@pytest.mark.parametrize(("inputs", "outputs"), [("inputs/", "outputs/"), ("in/", "inx/")])
def test_separate_prefixes_are_accepted(inputs: str, outputs: str) -> None:
    # Given two different folders, one named like the start of the other
    # When they are checked as the deployer checks them
    # Then the template deploys them
    check_parameters(TEMPLATE, {"InputPrefix": inputs, "OutputPrefix": outputs})
    # And the settings model, which checks the same thing at cold start, agrees
    PipelineSettings(input_prefix=inputs, output_prefix=outputs)


def test_every_rule_uses_only_functions_rules_may_use() -> None:
    # Given the rule-specific intrinsic functions CloudFormation allows in Rules
    allowed = {
        "Ref",
        "Fn::And",
        "Fn::Contains",
        "Fn::EachMemberEquals",
        "Fn::EachMemberIn",
        "Fn::Equals",
        "Fn::Not",
        "Fn::Or",
        "Fn::RefAll",
        "Fn::ValueOf",
        "Fn::ValueOfAll",
    }
    # When the Rules' functions are collected
    used = set(re.findall(r'"((?:Fn::)?[A-Za-z]+)":', json.dumps(TEMPLATE["Rules"])))
    used -= {"Assertions", "Assert", "AssertDescription", "RuleCondition"}
    used -= set(TEMPLATE["Rules"])
    # Then every function the Rules use is one of those
    assert used <= allowed


def test_the_local_emulators_plain_http_on_loopback_is_the_only_exception() -> None:
    # Given the local run's FalBaseUrl: the emulator on 127.0.0.1, which has no TLS
    # When the deployer checks it
    # Then the local deployer accepts it
    check_parameters(TEMPLATE, {"FalBaseUrl": "http://127.0.0.1:8123"})
    # But refuses plain HTTP anywhere else, as CloudFormation does
    with pytest.raises(ParameterRefusedError, match="FalBaseUrl"):
        check_parameters(TEMPLATE, {"FalBaseUrl": "http://queue.example.com"})


def test_the_local_deployer_refuses_a_bad_parameter_before_creating_anything() -> None:
    import boto3
    from moto import mock_aws

    from kontext_tools.local.stack import deploy_stack
    from kontext_tools.session_clients import SessionClients

    # Given a moto account, and prefixes that overlap
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        # When the stack is deployed with overlapping prefixes
        with pytest.raises(ParameterRefusedError, match="PrefixesDoNotOverlap"):
            deploy_stack(
                ROOT / "template.yaml",
                clients=SessionClients(session),
                parameters={"InputPrefix": "inputs/", "OutputPrefix": "inputs/"},
            )
        # Then nothing was created
        assert session.client("s3").list_buckets()["Buckets"] == []
