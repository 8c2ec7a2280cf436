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
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from werkzeug.exceptions import HTTPException

from kontext_tools.local.account import ACCOUNT_ID, REGION

# moto's logger: the run's log file (moto_server.py).
_LOG = logging.getLogger("moto.iam.enforcement")

RUNNER_USER = "local-run-administrator"
# The key moto's Step Functions interpreter signs its tasks' calls with.
STEP_FUNCTIONS_KEY = ("ak", "sk")
STEP_FUNCTIONS_USER = "local-run-step-functions-service"
ALLOW_EVERYTHING = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
# Lambda's role sessions last as long as the execution environment; a local run is shorter.
SESSION_SECONDS = 12 * 3600

# S3 operations whose IAM action has another name: (operation, names a version) -> action
# ("Actions, resources, and condition keys for Amazon S3" in the Service Authorization
# Reference). Operations not listed are checked under their own name.
S3_ACTIONS = {
    ("HeadObject", False): "GetObject",
    ("HeadObject", True): "GetObjectVersion",
    ("GetObject", True): "GetObjectVersion",
    ("DeleteObject", True): "DeleteObjectVersion",
    ("HeadBucket", False): "ListBucket",
    ("ListObjects", False): "ListBucket",
    ("ListObjectsV2", False): "ListBucket",
    ("ListObjectVersions", False): "ListBucketVersions",
    ("CreateMultipartUpload", False): "PutObject",
    ("UploadPart", False): "PutObject",
    ("CompleteMultipartUpload", False): "PutObject",
    ("CopyObject", False): "PutObject",
    ("ListParts", False): "ListMultipartUploadParts",
}

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
        with _presigned_urls_authorized():
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


@contextmanager
def _presigned_urls_authorized() -> Iterator[None]:
    """moto reads the credentials of an S3 request from its Authorization header only,
    and fails (500) on a presigned URL or an anonymous request. While active, a presigned
    URL is allowed what its signer's policies allow until it expires, and an anonymous
    request is refused (403), as S3 does for a private bucket."""
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415
    from moto.core.exceptions import ServiceException  # noqa: PLC0415
    from moto.iam.access_control import S3IAMRequest  # noqa: PLC0415

    original: Callable[..., None] = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        try:
            if iam_request_cls is S3IAMRequest:
                _authorize_s3(self, resource)
            else:
                original(self, iam_request_cls, resource)
        except (HTTPException, ServiceException) as refusal:
            # What was refused, to whom and on what, in the run's log (moto says only 403).
            _LOG.warning(
                "IAM refused %s %s on %s: %s",
                self.__class__.__name__,
                self._get_action(),
                resource,
                getattr(refusal, "description", None) or refusal,
            )
            raise

    setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize)  # noqa: B010
    try:
        with _unknown_resources_match_any_grant():
            yield
    finally:
        setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", original)  # noqa: B010


@contextmanager
def _unknown_resources_match_any_grant() -> Iterator[None]:
    """moto knows the resource of S3, SQS, IAM and STS requests only, and checks every
    other request against the resource "*", which a grant scoped to an ARN never matches:
    every scoped grant would be refused. While active, a request whose resource moto does
    not know is allowed by a statement that allows its action on any resource (the action
    is checked, the resource is not: docs/decisions.md, "IAM in the local run")."""
    from moto.iam.access_control import IAMPolicyStatement  # noqa: PLC0415

    original: Callable[..., bool] = IAMPolicyStatement._check_element_matches

    def matches(self: Any, statement_element: str, value: str) -> bool:
        if statement_element == "Resource" and value == "*":
            return True
        return original(self, statement_element, value)

    setattr(IAMPolicyStatement, "_check_element_matches", matches)  # noqa: B010
    try:
        yield
    finally:
        setattr(IAMPolicyStatement, "_check_element_matches", original)  # noqa: B010


def _authorize_s3(response: Any, resource: str) -> None:
    """moto's S3 check with the IAM action S3 checks (moto checks the operation's name,
    `s3:HeadObject`, which no policy grants), for signed and presigned requests."""
    from moto.iam.access_control import S3IAMRequest  # noqa: PLC0415

    query_string = urlparse(response.uri).query
    query = {name: values[0] for name, values in parse_qs(query_string).items()}
    operation = response._get_action()
    action = S3_ACTIONS.get((operation, "versionId" in query), S3_ACTIONS.get((operation, False)))
    headers = dict(response.headers)
    presigned = "Authorization" not in headers
    if presigned:
        headers = _presigned_credentials(query)
    path = response.raw_path + (f"?{query_string}" if query_string else "")
    request = S3IAMRequest(
        account_id=response.current_account,
        method=response.method,
        path=path,
        data=response.data,
        body=response.raw_body,
        headers=headers,
        action=action or operation,
    )
    if not presigned:
        request.check_signature()
    request.check_action_permitted(resource)


def _presigned_credentials(query: dict[str, str]) -> dict[str, str]:
    """The signer of a presigned URL (SigV4 or SigV2 query), as the headers moto reads
    credentials from; AccessDenied for a URL without one, or past its expiry."""
    from moto.s3.exceptions import S3AccessDeniedError  # noqa: PLC0415

    now = datetime.now(UTC)
    if "X-Amz-Credential" in query:
        credential = query["X-Amz-Credential"]
        try:
            signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = signed + timedelta(seconds=int(query["X-Amz-Expires"]))
        except (KeyError, ValueError) as exc:
            raise S3AccessDeniedError() from exc
        token = query.get("X-Amz-Security-Token")
    elif "AWSAccessKeyId" in query and query.get("Expires", "").isdigit():
        credential = f"{query['AWSAccessKeyId']}/00000000/{REGION}/s3/aws4_request"
        expires = datetime.fromtimestamp(int(query["Expires"]), UTC)
        token = query.get("x-amz-security-token")
    else:
        raise S3AccessDeniedError()
    if now > expires:
        raise S3AccessDeniedError()
    headers = {"Authorization": f"Credential={credential},"}
    if token:
        headers["X-Amz-Security-Token"] = token
    return headers
