"""Where moto's IAM check differs from AWS's, corrected while a local run enforces IAM
(iam_enforcement.py), and every refusal written to the run's log.

- S3: moto checks the operation's name (`s3:HeadObject`, which no policy grants); S3
  checks an IAM action (HeadObject -> s3:GetObject, ...). moto reads credentials from the
  Authorization header only and answers 500 to a presigned URL or an anonymous request.
- DynamoDB: a transaction is authorised item by item, not as `dynamodb:TransactWriteItems`.
- Outside S3, SQS, IAM and STS moto checks the resource "*", which an ARN-scoped grant
  never matches: the resource is read from the request where moto_resources.py knows it
  (DynamoDB, SNS, Step Functions, Secrets Manager, EventBridge); elsewhere the action is
  checked and the resource is not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from werkzeug.exceptions import HTTPException

from kontext_tools.local.account import REGION
from kontext_tools.local.moto_resources import resources_of, table_arn

# moto's logger: the run's log file (moto_server.py).
_LOG = logging.getLogger("moto.iam.enforcement")

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

# How each service answers a request its caller's policies do not allow, where moto's
# answer (an XML AccessDenied, 403) is not it: the error code, and the HTTP status.
ACCESS_DENIED_ANSWERS = {
    "dynamodb": ("AccessDeniedException", 400),
    "stepfunctions": ("AccessDeniedException", 400),
    "secretsmanager": ("AccessDeniedException", 400),
    "events": ("AccessDeniedException", 400),
    "sns": ("AuthorizationError", 403),
}

# A DynamoDB transaction's item kinds -> the action each is authorised as.
TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


@contextmanager
def moto_authorization_as_aws() -> Iterator[None]:
    """moto reads the credentials of an S3 request from its Authorization header only,
    and fails (500) on a presigned URL or an anonymous request. While active, a presigned
    URL is allowed what its signer's policies allow until it expires, and an anonymous
    request is refused (403), as S3 does for a private bucket."""
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415
    from moto.core.exceptions import ServiceException  # noqa: PLC0415
    from moto.iam.access_control import S3IAMRequest  # noqa: PLC0415

    original: Callable[..., None] = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        checked = [resource]
        try:
            if iam_request_cls is S3IAMRequest:
                _authorize_s3(self, resource)
            elif self._get_action() in ("TransactWriteItems", "TransactGetItems"):
                _authorize_transaction(self, iam_request_cls)
            else:
                for checked[0] in (resources_of(self) if resource == "*" else None) or [resource]:
                    original(self, iam_request_cls, checked[0])
        except (HTTPException, ServiceException) as refusal:
            # What was refused, to whom and on what, in the run's log (moto says only 403).
            _LOG.warning(
                "IAM refused %s %s on %s: %s",
                self.__class__.__name__,
                self._get_action(),
                checked[0],
                getattr(refusal, "description", None) or refusal,
            )
            raise as_the_service_answers(self.service_name, refusal, checked[0]) from refusal

    setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize)  # noqa: B010
    try:
        with _unknown_resources_match_any_grant():
            yield
    finally:
        setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", original)  # noqa: B010


def as_the_service_answers(service: str, refusal: Exception, resource: str) -> Exception:
    """moto's AccessDenied as the service itself answers it: in its protocol (a JSON
    `AccessDeniedException`, or SNS's `AuthorizationError`), naming the resource."""
    from moto.core.exceptions import AccessDeniedError, JsonRESTError  # noqa: PLC0415

    answer = ACCESS_DENIED_ANSWERS.get(service)
    if not isinstance(refusal, AccessDeniedError) or answer is None:
        return refusal
    code, status = answer
    message = f"{refusal.message} on resource: {resource}"
    if service == "sns":
        return QueryProtocolError(code, message, status)
    denied = JsonRESTError(code, message)
    denied.code = status
    return denied


class QueryProtocolError(HTTPException):
    """An error in the query protocol's shape (SNS), which botocore reads the code of."""

    def __init__(self, code: str, message: str, status: int) -> None:
        error = f"<Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
        super().__init__(description=f"<ErrorResponse><Error>{error}</Error></ErrorResponse>")
        self.code = status


def _authorize_transaction(response: Any, iam_request_cls: type) -> None:
    """DynamoDB authorises a transaction item by item (PutItem, UpdateItem, DeleteItem,
    ConditionCheckItem, GetItem); moto checks an action named after the operation, which
    no policy grants."""
    items = json.loads(response.raw_body or b"{}").get("TransactItems", [])
    checks = {
        (TRANSACTION_ITEM_ACTIONS[kind], table_arn(response, request["TableName"]))
        for item in items
        for kind, request in item.items()
    }
    for action, table in sorted(checks):
        request = iam_request_cls(
            account_id=response.current_account,
            method=response.method,
            path=response.raw_path,
            data=response.data,
            body=response.raw_body,
            headers=response.headers,
            action=action,
        )
        request.check_signature()
        request.check_action_permitted(table)


@contextmanager
def _unknown_resources_match_any_grant() -> Iterator[None]:
    """moto checks a request whose resource neither it nor moto_resources.py knows
    against the resource "*", which a grant scoped to an ARN never matches. While active,
    such a request is allowed by a statement that allows its action on any resource (the
    action is checked, the resource is not: docs/decisions.md, "IAM in the local run")."""
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
