"""AWS for the commands that work against a deployed stack: a session whose clients give
up in bounded time, the stack the command means, and one line for each AWS problem people
meet (no region, no credentials, offline, refused)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kontext_pipeline.core.errors import aws_error_code, aws_error_message

from kontext_tools.cli.exits import CliError
from kontext_tools.deployed import StackOutputs, find_stack, stack_name_from_samconfig
from kontext_tools.session_clients import SessionClients

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

DEFAULT_STACK = "kontext-pipeline"

# AWS error codes that mean the credentials themselves were refused (expired, unknown).
CREDENTIALS_REFUSED = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
    }
)


class Aws(SessionClients):
    """A boto3 session whose clients give up in bounded time (a CLI must not hang offline)."""

    def __init__(self, region: str | None) -> None:
        import boto3  # noqa: PLC0415 - keeps `--help` fast
        from botocore.config import Config  # noqa: PLC0415

        # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what the other SDKs read.
        region = region or os.environ.get("AWS_REGION") or None
        session = boto3.Session(region_name=region) if region else boto3.Session()
        config = Config(
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
        )
        super().__init__(session, config)


def stack_name(args: argparse.Namespace) -> str:
    """`--stack`, else the stack_name in ./samconfig.toml, else `kontext-pipeline`."""
    return str(args.stack or stack_name_from_samconfig() or DEFAULT_STACK)


def deployed_stack(args: argparse.Namespace, aws: Aws) -> StackOutputs:
    return find_stack(aws.cloudformation, stack_name(args))


def required_output(stack: StackOutputs, name: str) -> str:
    """A stack output the command needs; a stack deployed before it existed lacks it."""
    value = stack.outputs.get(name)
    if not value:
        raise CliError(f"stack {stack.name} has no {name} output; redeploy it")
    return value


def describe_aws_error(exc: Exception) -> str | None:
    """One line that names the problem and the fix, for the botocore errors people meet."""
    for kinds, describe in _aws_error_kinds():
        if isinstance(exc, kinds):
            return describe(exc)
    return None


def _aws_error_kinds() -> tuple[tuple[Any, Callable[[Any], str]], ...]:
    """Each kind of botocore error, first match wins, with the line that describes it."""
    from botocore import exceptions as boto  # noqa: PLC0415 - keeps `--help` fast

    return (
        (boto.NoRegionError, lambda _: _NO_REGION),
        (boto.NoCredentialsError | boto.PartialCredentialsError, lambda _: _NO_CREDENTIALS),
        (
            boto.ProfileNotFound,
            lambda exc: f"{exc}: check AWS_PROFILE, or run aws configure --profile <name>",
        ),
        (
            boto.TokenRetrievalError | boto.SSOTokenLoadError,
            lambda exc: f"AWS SSO login expired ({exc}): run aws sso login",
        ),
        (boto.EndpointConnectionError | boto.ConnectTimeoutError, _unreachable),
        (boto.ClientError, _refused),
        (boto.WaiterError, lambda exc: f"AWS did not finish: {exc}"),
        (boto.BotoCoreError, lambda exc: f"AWS: {exc}"),
    )


_NO_REGION = (
    "no AWS region configured: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), "
    "or run aws configure"
)
_NO_CREDENTIALS = (
    "no AWS credentials found: configure AWS credentials with aws configure "
    "(or aws sso login), or set AWS_PROFILE"
)


def _unreachable(exc: Exception) -> str:
    endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "AWS")
    return (
        f"cannot reach {endpoint}: check the network connection "
        "(and HTTPS_PROXY / AWS_ENDPOINT_URL if you use them)"
    )


def _refused(exc: ClientError) -> str:
    code = aws_error_code(exc)
    message = aws_error_message(exc)
    operation = exc.operation_name
    if code in CREDENTIALS_REFUSED:
        return f"AWS refused the credentials ({code}): refresh them (aws sso login, aws configure)"
    if "AccessDenied" in code or code == "AuthorizationError":
        return f"not allowed to {operation}: {message} - use credentials with access to the stack"
    return f"AWS {operation} failed: {code}: {message}"
