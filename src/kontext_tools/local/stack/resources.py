"""Each resource type of the template created through the ordinary boto3 APIs, with its
physical id and attributes recorded for the intrinsics that refer to it. Functions and
layers are published with their built code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kontext_tools.local.account import ACCOUNT_ID, REGION
from kontext_tools.local.stack.asl_checks import check_definition, render_definition
from kontext_tools.local.stack.intrinsics import Resolver
from kontext_tools.local.stack.local_stack import LocalStack
from kontext_tools.local.stack.sam_translation import Translation, zip_folder
from kontext_tools.local.stack.template import TemplateError
from kontext_tools.session_clients import SessionClients

Creator = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class LocalOverrides:
    """What a local run changes in what it deploys: environment variables for every
    function, and `function_url_for(function_name)`, which serves a function URL locally
    and returns it (None: function URLs are not emulated)."""

    environment: Mapping[str, str] = field(default_factory=dict)
    function_url_for: Callable[[str], str] | None = None


def _lambda_notifications(lambdas: list[dict[str, Any]]) -> list[Any]:
    """The template's bucket LambdaConfigurations as S3's API takes them."""
    return [
        {
            "LambdaFunctionArn": item["Function"],
            "Events": [item["Event"]],
            "Filter": {
                "Key": {"FilterRules": item.get("Filter", {}).get("S3Key", {}).get("Rules", [])}
            },
        }
        for item in lambdas
    ]


@dataclass
class ResourceCreator:
    clients: SessionClients
    stack: LocalStack
    resolver: Resolver
    translation: Translation
    overrides: LocalOverrides

    @cached_property
    def _creators(self) -> dict[str, Creator]:
        return {
            "AWS::S3::Bucket": self._bucket,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::SQS::Queue": self._queue,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::IAM::Role": self._role,
            "AWS::Lambda::LayerVersion": self._layer,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::Permission": self._permission,
            "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::DynamoDB::Table": self._table,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::Lambda::Url": self._function_url,
            "AWS::CloudWatch::Dashboard": self._dashboard,
            "AWS::Events::Rule": self._events_rule,
            "AWS::Events::EventBus": self._event_bus,
        }

    def create(self, logical_id: str, resource: dict[str, Any]) -> None:
        condition = resource.get("Condition")
        if condition and not self.resolver.condition(condition):
            return
        creator = self._creators.get(resource["Type"])
        if creator is None:
            self.stack.not_emulated.append(f"{logical_id} ({resource['Type']})")
            self.stack.physical_ids[logical_id] = f"{self.stack.name}-{logical_id}"
            return
        creator(logical_id, self.resolver.resolve(resource.get("Properties", {})))

    def _name(self, logical_id: str) -> str:
        return f"{self.stack.name}-{logical_id}"

    def _set(self, logical_id: str, ref: str, **attributes: str) -> None:
        self.stack.physical_ids[logical_id] = ref
        self.stack.attributes[logical_id] = attributes

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        s3 = self.clients.s3
        name = props.get("BucketName") or self._name(logical_id).lower()
        s3.create_bucket(Bucket=name)
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        lambdas = props.get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
        if lambdas:
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "LambdaFunctionConfigurations": _lambda_notifications(lambdas)
                },
            )
        self._set(
            logical_id, name, Arn=f"arn:aws:s3:::{name}", DomainName=f"{name}.s3.amazonaws.com"
        )

    def _topic(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("TopicName") or self._name(logical_id)
        arn = self.clients.sns.create_topic(Name=name)["TopicArn"]
        self._set(logical_id, arn, TopicName=name, TopicArn=arn)

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> None:
        attributes = {}
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
        arn = self.clients.sns.subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            Attributes=attributes,
        )["SubscriptionArn"]
        self._set(logical_id, arn)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("QueueName") or self._name(logical_id)
        sqs = self.clients.sqs
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._set(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    def _secret(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or self._name(logical_id)
        value = props.get("SecretString") or uuid.uuid4().hex
        arn = self.clients.secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
        self._set(logical_id, arn, Id=arn)

    def _role(self, logical_id: str, props: dict[str, Any]) -> None:
        iam = self.clients.iam
        name = props.get("RoleName") or self._name(logical_id)[:64]
        arn = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"])
        )["Role"]["Arn"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                # IAM's API wants the version that CloudFormation fills in by itself.
                PolicyDocument=json.dumps({"Version": "2012-10-17", **policy["PolicyDocument"]}),
            )
        self._set(logical_id, name, Arn=arn)

    def _layer(self, logical_id: str, props: dict[str, Any]) -> None:
        arn = self.clients.lambda_.publish_layer_version(
            LayerName=props.get("LayerName") or logical_id,
            # The translator renames the layer; its code key keeps the template's name.
            Content={"ZipFile": zip_folder(self._layer_dir(props))},
            CompatibleRuntimes=props.get("CompatibleRuntimes", []),
        )["LayerVersionArn"]
        self._set(logical_id, arn)

    def _layer_dir(self, props: dict[str, Any]) -> Path:
        template_name = str(props["Content"]["S3Key"]).removesuffix(".zip")
        try:
            return self.translation.layer_dirs[template_name]
        except KeyError as exc:
            raise TemplateError(f"no built folder for layer {template_name}") from exc

    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("FunctionName") or self._name(logical_id)
        environment = dict(props.get("Environment", {}).get("Variables", {}))
        environment.update(self.overrides.environment)
        source = self.translation.functions[logical_id]
        response = self.clients.lambda_.create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.12"),
            Role=props["Role"],
            Handler=props["Handler"],
            Code={"ZipFile": zip_folder(source.code_dir)},
            Architectures=props.get("Architectures", ["x86_64"]),
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": {k: str(v) for k, v in environment.items()}},
            Layers=props.get("Layers", []),
        )
        self.stack.functions[name] = source
        self._set(logical_id, name, Arn=response["FunctionArn"])

    def _permission(self, logical_id: str, props: dict[str, Any]) -> None:
        self._set(logical_id, self._name(logical_id))

    def _event_invoke_config(self, logical_id: str, props: dict[str, Any]) -> None:
        config: dict[str, Any] = {
            "FunctionName": props["FunctionName"],
            "Qualifier": props.get("Qualifier", "$LATEST"),
        }
        if "MaximumRetryAttempts" in props:
            config["MaximumRetryAttempts"] = int(props["MaximumRetryAttempts"])
        if "DestinationConfig" in props:
            config["DestinationConfig"] = props["DestinationConfig"]
        self.clients.lambda_.put_function_event_invoke_config(**config)
        function_name = str(props["FunctionName"]).rsplit(":", 1)[-1]
        self.stack.async_configs[function_name] = config
        self._set(logical_id, self._name(logical_id))

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> None:
        definition = render_definition(
            props.get("DefinitionString") or json.dumps(props["Definition"]),
            props.get("DefinitionSubstitutions", {}),
        )
        name = props.get("StateMachineName") or self._name(logical_id)
        # moto takes definitions AWS refuses: refuse them first, with AWS's message.
        self.stack.definition_checks[name] = check_definition(name, definition)
        arn = self.clients.stepfunctions.create_state_machine(
            name=name,
            definition=definition,
            roleArn=props["RoleArn"],
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        self._set(logical_id, arn, Name=name, Arn=arn)

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("TableName") or self._name(logical_id)
        dynamodb = self.clients.dynamodb
        arn = dynamodb.create_table(
            TableName=name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
        )["TableDescription"]["TableArn"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        self._set(logical_id, name, Arn=arn)

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("AlarmName") or self._name(logical_id)
        fields = {k: v for k, v in props.items() if k != "AlarmName"}
        for number in ("Period", "EvaluationPeriods"):
            if number in fields:
                fields[number] = int(fields[number])
        if "Threshold" in fields:
            fields["Threshold"] = float(fields["Threshold"])
        for metric in fields.get("Metrics", []):
            if "MetricStat" in metric:
                metric["MetricStat"]["Period"] = int(metric["MetricStat"]["Period"])
        self.clients.cloudwatch.put_metric_alarm(AlarmName=name, **fields)
        self._set(logical_id, name, Arn=f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}")

    def _function_url(self, logical_id: str, props: dict[str, Any]) -> None:
        if self.overrides.function_url_for is None:
            self.stack.not_emulated.append(f"{logical_id} (AWS::Lambda::Url)")
            url = f"https://{logical_id.lower()}.lambda-url.{REGION}.on.aws/"
        else:
            url = self.overrides.function_url_for(str(props["TargetFunctionArn"]))
        self._set(logical_id, url, FunctionUrl=url)

    def _event_bus(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or self._name(logical_id)
        arn = self.clients.events.create_event_bus(Name=name)["EventBusArn"]
        self._set(logical_id, name, Arn=arn, Name=name)

    def _events_rule(self, logical_id: str, props: dict[str, Any]) -> None:
        """The rule and its targets on moto's EventBridge. Targets that are the stack's
        functions are invoked by the local run (lambda_routing.py), since moto's rules cannot."""
        events = self.clients.events
        name = props.get("Name") or self._name(logical_id)[:64]
        bus = props.get("EventBusName", "default")
        arn = events.put_rule(
            Name=name,
            EventPattern=json.dumps(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
            EventBusName=bus,
        )["RuleArn"]
        targets: list[Any] = [
            {key: value for key, value in target.items() if key in ("Id", "Arn", "Input")}
            for target in props.get("Targets", [])
        ]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self._set(logical_id, name, Arn=arn)

    def _dashboard(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("DashboardName") or self._name(logical_id)
        self.clients.cloudwatch.put_dashboard(
            DashboardName=name, DashboardBody=props["DashboardBody"]
        )
        self._set(logical_id, name)
