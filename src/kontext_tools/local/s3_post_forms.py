"""Browser-based uploads (an S3 POST form with a signed policy) as S3 checks them.

moto's S3 stores a POST form's file without reading its policy: no expiry, no conditions,
no signature. With IAM enforced it even refuses every form as anonymous, since a form
carries no Authorization header. S3 authenticates a form by its policy's signature
(Signature Version 4), refuses it when the policy has expired or a form field or the
file's size breaks a condition, or when a field is not named by a condition, and then
authorizes s3:PutObject as the signer (S3 API reference, "Browser-Based Uploads Using
POST (AWS Signature Version 4)" and "Creating a POST Policy"). The intake's upload forms
bind the prompt and options this way, so the local S3 checks them as S3 does.

SigV2 forms are refused here (AWS still takes them in the oldest regions only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from kontext_tools.local.patching import replaced

# Form fields S3 does not look for in the policy's conditions.
_UNCONDITIONED = frozenset({"policy", "x-amz-signature", "file"})


class FormRefusedError(Exception):
    """Why S3 would refuse the form, and its answer: 403 AccessDenied, or 400 for a file
    outside the policy's size range."""

    def __init__(self, message: str, code: str = "AccessDenied", status: int = 403) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@contextmanager
def s3_post_policy() -> Iterator[None]:
    """While active, the local S3 checks POST forms as S3 does."""
    from moto.s3.responses import S3Response  # noqa: PLC0415 - local run only

    original = S3Response._bucket_response_post

    def checked(self: Any, request: Any, bucket_name: str) -> Any:
        form = {name.lower(): value for name, value in self.form_data.items()}
        if "policy" not in form:
            return original(self, request, bucket_name)
        try:
            signer = _access_key(self.current_account, form)
            secret = str(signer.create_credentials().secret_key)
            check_form(form, bucket_name, len(self.raw_body or b""), secret, datetime.now(UTC))
            _check_signer_may_put(signer, form, bucket_name)
        except FormRefusedError as exc:
            return exc.status, {}, _error_document(exc)
        # Authenticated and authorized above, by the form: not as an anonymous request.
        self._authenticate_and_authorize_s3_action = lambda **_: None
        return original(self, request, bucket_name)

    with replaced(S3Response, "_bucket_response_post", checked):
        yield


def check_form(
    form: Mapping[str, str], bucket: str, file_size: int, secret: str, now: datetime
) -> None:
    """FormRefusedError unless the form's policy is signed with `secret`, unexpired, and
    holds for every field, the bucket and the file's size."""
    if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        raise FormRefusedError("only Signature Version 4 forms (x-amz-algorithm) are taken")
    if not hmac.compare_digest(form.get("x-amz-signature", ""), _signature(form, secret)):
        raise FormRefusedError("The request signature we calculated does not match")
    policy = json.loads(base64.b64decode(form["policy"]))
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if expires <= now:
        raise FormRefusedError("Invalid according to Policy: Policy expired.")
    values = {**form, "bucket": bucket}
    named: set[str] = set()
    for condition in policy["conditions"]:
        named |= _check_condition(condition, values, file_size)
    unnamed = {field for field in form if field not in _UNCONDITIONED | named} - {
        f for f in form if f.startswith("x-ignore-")
    }
    if unnamed:
        raise FormRefusedError(
            f"Invalid according to Policy: Extra input fields: {', '.join(sorted(unnamed))}"
        )


def _check_condition(condition: Any, values: Mapping[str, str], file_size: int) -> set[str]:
    """The fields the condition names, once it holds."""
    if isinstance(condition, dict):
        ((field, expected),) = condition.items()
        condition = ["eq", f"${field}", expected]
    operator, *operands = condition
    if operator == "content-length-range":
        low, high = (int(bound) for bound in operands)
        if not low <= file_size <= high:
            code = "EntityTooSmall" if file_size < low else "EntityTooLarge"
            raise FormRefusedError(
                f"Your proposed upload ({file_size} bytes) is outside {low}..{high} bytes",
                code,
                400,
            )
        return set()
    field, expected = str(operands[0]).removeprefix("$").lower(), str(operands[1])
    given = values.get(field, "")
    holds = given == expected if operator == "eq" else given.startswith(expected)
    if operator not in ("eq", "starts-with") or not holds:
        raise FormRefusedError(
            f"Invalid according to Policy: Policy Condition failed: {condition!r}"
        )
    return {field}


def _signature(form: Mapping[str, str], secret: str) -> str:
    """The form's SigV4 signature: the policy, signed with the key of its credential scope."""
    _, day, region, service, _ = form.get("x-amz-credential", "////").split("/", 4)
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, form["policy"].encode(), hashlib.sha256).hexdigest()


def _access_key(account_id: str, form: Mapping[str, str]) -> Any:
    from moto.iam.access_control import (  # noqa: PLC0415 - local run only
        CreateAccessKeyFailure,
        create_access_key,
    )

    access_key_id = form.get("x-amz-credential", "").split("/", 1)[0]
    token = form.get("x-amz-security-token")
    headers = {"X-Amz-Security-Token": token} if token else {}
    try:
        return create_access_key(account_id, "aws", access_key_id, headers)
    except CreateAccessKeyFailure as exc:
        raise FormRefusedError(f"no such access key: {exc.reason}") from exc


def _check_signer_may_put(signer: Any, form: Mapping[str, str], bucket: str) -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult  # noqa: PLC0415

    resource = f"arn:aws:s3:::{bucket}/{form.get('key', '')}"
    results = [
        IAMPolicy(policy).is_action_permitted("s3:PutObject", resource)
        for policy in signer.collect_policies()
    ]
    if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
        raise FormRefusedError(f"the form's signer may not s3:PutObject {resource}")


def _error_document(error: FormRefusedError) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{error.code}</Code><Message>{escape(str(error))}</Message></Error>"
    )
