"""IAM enforced in the local run: moto checks every request against the caller's identity
policies, as AWS does, and each function calls with its own role's credentials.

Who calls with what:
- the runner (stand-up, the CLI's reads, test assertions) as an administrator user;
- each function's sandbox with credentials of the role the template gives it, taken as
  the Lambda service takes them: only if the role's trust policy lets
  lambda.amazonaws.com assume it (`function_credentials`);
- moto's Step Functions interpreter with the fixed key it signs with ("ak"), which stands
  for the Step Functions service here and is allowed everything (a state machine's role
  is not checked; docs/decisions.md, "IAM in the local run").

moto checks requests only once `moto.settings.INITIAL_NO_AUTH_ACTION_COUNT` requests have
passed (read from the environment when moto is imported; infinite by default). Tests and
the CLI import moto before a run starts, so the count is set at run time, on the settings
module moto reads at every request, and the request counter reset, as moto's own
`enable_iam_authentication` does; it is restored when the last run in the process stops.
Identities are made in moto's backends directly, so they can be made while it enforces.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kontext_tools.local.account import ACCOUNT_ID, REGION
from kontext_tools.local.moto_authorization import moto_authorization_as_aws

RUNNER_USER = "local-run-administrator"
# The key moto's Step Functions interpreter signs its tasks' calls with.
STEP_FUNCTIONS_KEY = ("ak", "sk")
STEP_FUNCTIONS_USER = "local-run-step-functions-service"
ALLOW_EVERYTHING = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
# Lambda's role sessions last as long as the execution environment; a local run is shorter.
SESSION_SECONDS = 12 * 3600

_ENFORCING = [0]
# moto's settings as they were before the first run in this process enforced.
_SAVED: list[tuple[float, int]] = []
_ENFORCING_LOCK = threading.Lock()


class RoleNotAssumableError(ValueError):
    """The role's trust policy does not let the Lambda service assume it."""


@contextmanager
def identity_policies_enforced() -> Iterator[dict[str, str]]:
    """While active, moto refuses what the caller's identity policies do not allow.
    Yields the runner's environment (administrator credentials)."""
    from moto import settings  # noqa: PLC0415 - local run only
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415

    with _ENFORCING_LOCK:
        if _ENFORCING[0] == 0:
            saved = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            ActionAuthenticatorMixin.request_count = 0
            _SAVED.append(saved)
        _ENFORCING[0] += 1
    try:
        with moto_authorization_as_aws():
            _step_functions_service()
            yield _runner_environment()
    finally:
        with _ENFORCING_LOCK:
            _ENFORCING[0] -= 1
            if _ENFORCING[0] == 0:
                count, requests = _SAVED.pop()
                settings.INITIAL_NO_AUTH_ACTION_COUNT = count
                ActionAuthenticatorMixin.request_count = requests


def function_credentials(role_arn: str, function_name: str) -> dict[str, str]:
    """The environment variables of a session of `role_arn`, as Lambda gives a function.

    Raises RoleNotAssumableError as Lambda's CreateFunction would for such a role."""
    from moto.sts.models import sts_backends  # noqa: PLC0415 - local run only

    role = _iam().get_role_by_arn(role_arn)
    if not _trusts_lambda(json.loads(role.assume_role_policy_document)):
        raise RoleNotAssumableError(
            f"The role defined for {function_name} cannot be assumed by Lambda."
        )
    session = sts_backends[ACCOUNT_ID]["aws"].assume_role(
        region_name=REGION,
        role_session_name=function_name[:64],
        role_arn=role_arn,
        policy="",
        duration=SESSION_SECONDS,
        external_id="",
    )
    return {
        "AWS_ACCESS_KEY_ID": session.access_key_id,
        "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
    }


def _trusts_lambda(trust: dict[str, Any]) -> bool:
    statements = trust.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        services = statement.get("Principal", {}).get("Service", [])
        actions = statement.get("Action", [])
        if (
            statement.get("Effect") == "Allow"
            and "lambda.amazonaws.com" in ([services] if isinstance(services, str) else services)
            and "sts:AssumeRole" in ([actions] if isinstance(actions, str) else actions)
        ):
            return True
    return False


def _iam() -> Any:
    from moto.iam.models import iam_backends  # noqa: PLC0415 - local run only

    return iam_backends[ACCOUNT_ID]["aws"]


def _user_allowed_everything(name: str) -> Any:
    """The user (made now, or by another run in this process) and its first access key."""
    iam = _iam()
    if name not in iam.users:
        iam.create_user(REGION, name)
        iam.put_user_policy(name, "AllowEverything", ALLOW_EVERYTHING)
        iam.create_access_key(name)
    return iam.users[name].access_keys[0]


def _runner_environment() -> dict[str, str]:
    key = _user_allowed_everything(RUNNER_USER)
    return {
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
    }


def _step_functions_service() -> None:
    key = _user_allowed_everything(STEP_FUNCTIONS_USER)
    key.access_key_id, key.secret_access_key = STEP_FUNCTIONS_KEY
