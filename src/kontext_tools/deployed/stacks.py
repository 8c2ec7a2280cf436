"""The deployed stack: its name from samconfig.toml, its outputs, the model's API key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from kontext_pipeline.core.errors import ConfigurationError, InvalidInputError, aws_error_message

from kontext_tools.errors import ToolReason

if TYPE_CHECKING:
    from types_boto3_cloudformation.client import CloudFormationClient
    from types_boto3_cloudformation.type_defs import StackTypeDef
    from types_boto3_secretsmanager.client import SecretsManagerClient


class DeployedStackError(ConfigurationError):
    """The stack cannot be used: not found, no credentials, no access."""

    default_reason: ClassVar[StrEnum] = ToolReason.STACK_UNAVAILABLE


@dataclass(frozen=True)
class StackOutputs:
    name: str
    outputs: dict[str, str]

    @property
    def bucket(self) -> str:
        return self.outputs["ImagesBucketName"]

    @property
    def input_prefix(self) -> str:
        return self.outputs.get("InputPrefix", "inputs/")

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]


@dataclass(frozen=True)
class ReadAdvice:
    """What to tell the user when the stack cannot be read: how to set credentials up, and
    what to say when it does not exist (None: CloudFormation's own message)."""

    credentials: str
    not_found: str | None = None


def stack_name_from_samconfig(path: Path = Path("samconfig.toml")) -> str | None:
    if not path.is_file():
        return None
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    for section in ("deploy", "global"):
        name = config.get("default", {}).get(section, {}).get("parameters", {}).get("stack_name")
        if name:
            return str(name)
    return None


def stack_outputs_of(stack: StackTypeDef) -> dict[str, str]:
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def describe_stack(
    cloudformation: CloudFormationClient, stack_name: str, advice: ReadAdvice
) -> StackTypeDef:
    """The stack as CloudFormation describes it, or a DeployedStackError that says why not."""
    try:
        return cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except (NoCredentialsError, NoRegionError) as exc:
        raise DeployedStackError(
            f"{exc}: {advice.credentials}", reason=ToolReason.NO_CREDENTIALS
        ) from exc
    except ClientError as exc:
        message = aws_error_message(exc)
        missing = "does not exist" in message
        text = f"cannot read stack {stack_name!r}: {message}"
        if missing and advice.not_found is not None:
            text = advice.not_found.format(stack_name=stack_name)
        reason = ToolReason.STACK_NOT_FOUND if missing else None
        raise DeployedStackError(text, reason=reason) from exc


FIND_ADVICE = ReadAdvice(
    credentials="configure AWS credentials and a region (aws configure, or AWS_PROFILE / "
    "AWS_REGION)",
    not_found="stack {stack_name!r} not found in this account and region; deploy it with "
    "make deploy, or pass --stack / --region",
)


def find_stack(cloudformation: CloudFormationClient, stack_name: str) -> StackOutputs:
    """The stack's outputs, or a message that says what to fix."""
    outputs = stack_outputs_of(describe_stack(cloudformation, stack_name, FIND_ADVICE))
    if "ImagesBucketName" not in outputs or "StateMachineArn" not in outputs:
        raise DeployedStackError(f"stack {stack_name!r} is not a kontext-pipeline stack")
    return StackOutputs(stack_name, outputs)


def put_api_key(secretsmanager: SecretsManagerClient, stack: StackOutputs, api_key: str) -> None:
    if not api_key.strip():
        raise InvalidInputError("the API key is empty", reason=ToolReason.MISSING_KEY)
    secretsmanager.put_secret_value(
        SecretId=stack.outputs["FalApiKeySecretArn"], SecretString=api_key.strip()
    )
