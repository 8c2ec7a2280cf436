"""Deploy the built template onto AWS emulation (moto), the way CloudFormation would.

The template `sam build` wrote (template.yaml with each CodeUri and ContentUri pointing at
its built folder) is translated by SAM's own translator (what `sam deploy` uses) into
plain CloudFormation; this module then creates each resource through the ordinary boto3
APIs, in dependency order, resolving the intrinsic functions the template uses. Functions
and layers are published with their built code. So the local run exercises the very
resources, names, environment, code and state machine definition that AWS gets, and
nothing is described twice.

Resource types with no meaning in a single-process emulation are listed in
`LocalStack.not_emulated` rather than silently dropped. Bucket policies are among them:
the template's only statement denies non-TLS access, and in-process calls carry no
transport for moto to judge.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
CODE_BUCKET = "kontext-local-code"
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(Exception):
    """The template uses something the local deployer cannot resolve."""


@dataclass(frozen=True)
class FunctionSource:
    """Where a function's built code lives on disk, from the template's CodeUri, Handler
    and Layers (each layer's built folder, as Lambda would mount it at /opt)."""

    logical_id: str
    code_dir: Path
    handler: str
    layer_dirs: tuple[Path, ...] = ()


@dataclass
class LocalStack:
    name: str
    template: dict[str, Any]
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSource] = field(default_factory=dict)  # by function name
    # Asynchronous invocation settings by function name: retries and on-failure destination.
    async_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_emulated: list[str] = field(default_factory=list)


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...)."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


def translate_template(
    path: Path, parameters: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, FunctionSource], dict[str, Path]]:
    """SAM -> CloudFormation with SAM's translator; local paths become code in S3."""
    from samtranslator.translator.transform import transform  # noqa: PLC0415 - local run only

    # The translator warns about its own usage metrics, which only `sam` publishes.
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)

    sam = load_template(path)
    root = path.parent
    functions: dict[str, FunctionSource] = {}
    handler_default = sam.get("Globals", {}).get("Function", {}).get("Handler")
    layers_default = sam.get("Globals", {}).get("Function", {}).get("Layers", [])
    layer_dirs = {
        logical_id: root / str(resource["Properties"]["ContentUri"])
        for logical_id, resource in sam.get("Resources", {}).items()
        if resource["Type"] == "AWS::Serverless::LayerVersion"
    }
    for logical_id, resource in sam.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            code_dir = root / str(properties["CodeUri"])
            layers = properties.get("Layers", layers_default)
            functions[logical_id] = FunctionSource(
                logical_id,
                code_dir,
                str(properties.get("Handler", handler_default)),
                tuple(layer_dirs[item["Ref"]] for item in layers if "Ref" in item),
            )
            properties["CodeUri"] = f"s3://{CODE_BUCKET}/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://{CODE_BUCKET}/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in properties:
            definition_path = root / str(properties.pop("DefinitionUri"))
            properties["Definition"] = json.loads(definition_path.read_text(encoding="utf-8"))

    class _NoManagedPolicies:
        # The template only uses SAM policy templates, which need no IAM look-up.
        def load(self) -> dict[str, str]:
            return {}

    cfn: dict[str, Any] = transform(sam, dict(parameters), _NoManagedPolicies())
    return cfn, functions, layer_dirs


def deploy_stack(
    template_path: Path,
    *,
    session: Any,
    stack_name: str = "kontext-local",
    parameters: Mapping[str, str] | None = None,
    environment_overrides: Mapping[str, str] | None = None,
    function_url_for: Callable[[str], str] | None = None,
) -> LocalStack:
    """Create every resource of the template on the (moto-backed) boto3 session.

    `function_url_for(function_name)` serves a function URL locally and returns it.
    """
    # Refused as CloudFormation refuses them: before anything is created.
    from kontext_tools.local.rules import check_parameters  # noqa: PLC0415 - deploy only

    given = dict(parameters or {})
    values = check_parameters(load_template(template_path), given)
    cfn, sources, layer_dirs = translate_template(template_path, given)
    stack = LocalStack(name=stack_name, template=cfn)
    resolver = _Resolver(stack, values)
    deployer = _Deployer(
        session,
        stack,
        resolver,
        sources=sources,
        layer_dirs=layer_dirs,
        environment_overrides=dict(environment_overrides or {}),
        function_url_for=function_url_for,
    )
    for logical_id in _creation_order(cfn["Resources"]):
        deployer.create(logical_id, cfn["Resources"][logical_id])
    for name, output in cfn.get("Outputs", {}).items():
        if "Condition" not in output or resolver.condition(output["Condition"]):
            stack.outputs[name] = str(resolver.resolve(output["Value"]))
    _register_stack(session, stack)
    return stack


def _register_stack(session: Any, stack: LocalStack) -> None:
    """Make the stack's outputs readable through CloudFormation, as after `sam deploy`."""
    summary = {
        "Resources": {"Deployed": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in stack.outputs.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto notes it does not model the placeholder
        session.client("cloudformation", region_name=REGION).create_stack(
            StackName=stack.name, TemplateBody=json.dumps(summary)
        )


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(m.split(".")[0] for m in _SUB_VARIABLE.findall(text))
                if isinstance(inner, list):
                    found.update(_references(inner[1]))
            else:
                found.update(_references(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(_references(inner))
    return found


def _creation_order(resources: Mapping[str, Any]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular dependency through {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends = resource.get("DependsOn", [])
        needs = _references(resource.get("Properties", {})) | set(
            [depends] if isinstance(depends, str) else depends
        )
        for dependency in sorted(needs & set(resources)):
            visit(dependency)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order


class _Resolver:
    def __init__(self, stack: LocalStack, parameters: dict[str, str]) -> None:
        self._stack = stack
        self._parameters = parameters
        stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack.name}/{uuid.uuid4()}"
        self._pseudo = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::StackName": stack.name,
            "AWS::StackId": stack_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911 - one branch per intrinsic
        if isinstance(value, list):
            return [self.resolve(item) for item in value if not _is_no_value(item)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref":
                return self._ref(str(inner))
            if key == "Fn::GetAtt":
                target, attribute = inner if isinstance(inner, list) else inner.split(".", 1)
                return self._get_att(target, attribute)
            if key == "Fn::Sub":
                return self._sub(inner)
            if key == "Fn::Join":
                separator, items = inner
                return str(separator).join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = self.resolve(inner)
                return items[int(index)]
            if key == "Fn::Split":
                separator, text = self.resolve(inner)
                return str(text).split(separator)
            if key == "Fn::Equals":
                left, right = self.resolve(inner)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(inner)[0]
            if key == "Fn::If":
                condition, when_true, when_false = inner
                chosen = when_true if self.condition(condition) else when_false
                return self.resolve(chosen)
        return {k: self.resolve(v) for k, v in value.items() if not _is_no_value(v)}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._stack.template.get("Conditions", {})[name]))

    def _ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._stack.physical_ids:
            return self._stack.physical_ids[name]
        raise TemplateError(f"cannot resolve Ref {name}")

    def _get_att(self, target: str, attribute: str) -> str:
        try:
            return self._stack.attributes[target][attribute]
        except KeyError as exc:
            raise TemplateError(f"cannot resolve GetAtt {target}.{attribute}") from exc

    def _sub(self, inner: Any) -> str:
        text, variables = (
            (inner[0], self.resolve(inner[1]))
            if isinstance(inner, list)
            else (
                inner,
                {},
            )
        )

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".")[0] not in self._pseudo:
                target, attribute = name.split(".", 1)
                return self._get_att(target, attribute)
            return self._ref(name)

        return _SUB_VARIABLE.sub(replace, str(text))


def _is_no_value(value: Any) -> bool:
    return isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}


def zip_folder(folder: Path) -> bytes:
    """A folder as Lambda takes it: a zip with the folder's content at its root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


class _Deployer:
    def __init__(
        self,
        session: Any,
        stack: LocalStack,
        resolver: _Resolver,
        *,
        sources: dict[str, FunctionSource],
        layer_dirs: dict[str, Path],
        environment_overrides: dict[str, str],
        function_url_for: Callable[[str], str] | None,
    ) -> None:
        self._function_url_for = function_url_for
        self._session = session
        self._stack = stack
        self._resolver = resolver
        self._sources = sources
        self._layer_dirs = layer_dirs
        self._environment_overrides = environment_overrides
        self._handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
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
        }

    def client(self, service: str) -> Any:
        return self._session.client(service, region_name=REGION)

    def create(self, logical_id: str, resource: dict[str, Any]) -> None:
        condition = resource.get("Condition")
        if condition and not self._resolver.condition(condition):
            return
        handler = self._handlers.get(resource["Type"])
        if handler is None:
            self._stack.not_emulated.append(f"{logical_id} ({resource['Type']})")
            self._stack.physical_ids[logical_id] = f"{self._stack.name}-{logical_id}"
            return
        handler(logical_id, self._resolver.resolve(resource.get("Properties", {})))

    def _name(self, logical_id: str) -> str:
        return f"{self._stack.name}-{logical_id}"

    def _set(self, logical_id: str, ref: str, **attributes: str) -> None:
        self._stack.physical_ids[logical_id] = ref
        self._stack.attributes[logical_id] = attributes

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        s3 = self.client("s3")
        name = props.get("BucketName") or self._name(logical_id).lower()
        s3.create_bucket(Bucket=name)
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        lambdas = props.get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
        if lambdas:
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "LambdaFunctionConfigurations": [
                        {
                            "LambdaFunctionArn": item["Function"],
                            "Events": [item["Event"]],
                            "Filter": {
                                "Key": {
                                    "FilterRules": item.get("Filter", {})
                                    .get("S3Key", {})
                                    .get("Rules", [])
                                }
                            },
                        }
                        for item in lambdas
                    ]
                },
            )
        self._set(
            logical_id, name, Arn=f"arn:aws:s3:::{name}", DomainName=f"{name}.s3.amazonaws.com"
        )

    def _topic(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("TopicName") or self._name(logical_id)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        self._set(logical_id, arn, TopicName=name, TopicArn=arn)

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> None:
        attributes = {}
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
        arn = self.client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            Attributes=attributes,
        )["SubscriptionArn"]
        self._set(logical_id, arn)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("QueueName") or self._name(logical_id)
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._set(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    def _secret(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("Name") or self._name(logical_id)
        value = props.get("SecretString") or uuid.uuid4().hex
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
        self._set(logical_id, arn, Id=arn)

    def _role(self, logical_id: str, props: dict[str, Any]) -> None:
        iam = self.client("iam")
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
        arn = self.client("lambda").publish_layer_version(
            LayerName=props.get("LayerName") or logical_id,
            # The translator renames the layer; its code key keeps the template's name.
            Content={"ZipFile": zip_folder(self._layer_dir(props))},
            CompatibleRuntimes=props.get("CompatibleRuntimes", []),
        )["LayerVersionArn"]
        self._set(logical_id, arn)

    def _layer_dir(self, props: dict[str, Any]) -> Path:
        template_name = str(props["Content"]["S3Key"]).removesuffix(".zip")
        try:
            return self._layer_dirs[template_name]
        except KeyError as exc:
            raise TemplateError(f"no built folder for layer {template_name}") from exc

    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("FunctionName") or self._name(logical_id)
        environment = dict(props.get("Environment", {}).get("Variables", {}))
        environment.update(self._environment_overrides)
        response = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.12"),
            Role=props["Role"],
            Handler=props["Handler"],
            Code={"ZipFile": zip_folder(self._sources[logical_id].code_dir)},
            Architectures=props.get("Architectures", ["x86_64"]),
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": {k: str(v) for k, v in environment.items()}},
            Layers=props.get("Layers", []),
        )
        source = self._sources[logical_id]
        self._stack.functions[name] = source
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
        self.client("lambda").put_function_event_invoke_config(**config)
        function_name = str(props["FunctionName"]).rsplit(":", 1)[-1]
        self._stack.async_configs[function_name] = config
        self._set(logical_id, self._name(logical_id))

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> None:
        definition = props.get("DefinitionString") or json.dumps(props["Definition"])
        for name, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + name + "}", str(value))
        name = props.get("StateMachineName") or self._name(logical_id)
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=props["RoleArn"],
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        self._set(logical_id, arn, Name=name, Arn=arn)

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("TableName") or self._name(logical_id)
        dynamodb = self.client("dynamodb")
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
        self.client("cloudwatch").put_metric_alarm(AlarmName=name, **fields)
        self._set(logical_id, name, Arn=f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}")

    def _function_url(self, logical_id: str, props: dict[str, Any]) -> None:
        if self._function_url_for is None:
            self._stack.not_emulated.append(f"{logical_id} (AWS::Lambda::Url)")
            url = f"https://{logical_id.lower()}.lambda-url.{REGION}.on.aws/"
        else:
            url = self._function_url_for(str(props["TargetFunctionArn"]))
        self._set(logical_id, url, FunctionUrl=url)

    def _events_rule(self, logical_id: str, props: dict[str, Any]) -> None:
        """The rule and its targets on moto's EventBridge. Targets that are the stack's
        functions are invoked by the local run (lambdas.py), since moto's rules cannot."""
        events = self.client("events")
        name = props.get("Name") or self._name(logical_id)[:64]
        bus = props.get("EventBusName", "default")
        arn = events.put_rule(
            Name=name,
            EventPattern=json.dumps(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
            EventBusName=bus,
        )["RuleArn"]
        targets = [
            {key: value for key, value in target.items() if key in ("Id", "Arn", "Input")}
            for target in props.get("Targets", [])
        ]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self._set(logical_id, name, Arn=arn)

    def _dashboard(self, logical_id: str, props: dict[str, Any]) -> None:
        name = props.get("DashboardName") or self._name(logical_id)
        self.client("cloudwatch").put_dashboard(
            DashboardName=name, DashboardBody=props["DashboardBody"]
        )
        self._set(logical_id, name)
