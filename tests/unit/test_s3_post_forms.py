"""The local S3's check of POST forms (local/s3_post_forms.py): a form boto3 signs passes,
as S3 takes it; a changed field, an unnamed one, an expired policy, a wrong signature or a
file outside the size range is refused as S3 refuses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from kontext_tools.local.s3_post_forms import FormRefusedError, check_form

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BUCKET = "kontext-images-form"


def signed_form(**fields: str) -> dict[str, str]:
    """A form as the intake makes it: SigV4, fields bound, 1..1000 bytes."""
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4"),
    )
    bound = {"Content-Type": "image/png", "x-amz-meta-prompt": "make it snow"} | fields
    conditions: list[Any] = [{name: value} for name, value in bound.items()]
    conditions.append(["content-length-range", 1, 1000])
    form = s3.generate_presigned_post(
        BUCKET, "inputs/api/ed_1.png", Fields=bound, Conditions=conditions, ExpiresIn=900
    )
    return {name.lower(): value for name, value in form["fields"].items()}


def check(form: dict[str, str], *, size: int = 10, later: float = 0, secret: str = SECRET) -> None:
    check_form(form, BUCKET, size, secret, datetime.now(UTC) + timedelta(seconds=later))


def test_a_form_signed_as_the_intake_signs_it_is_taken() -> None:
    # Given a form boto3 signed / When the local S3 checks it / Then it passes
    check(signed_form())


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"x-amz-meta-prompt": "something else"}, "Policy Condition failed"),
        ({"content-type": "text/html"}, "Policy Condition failed"),
        ({"key": "inputs/other.png"}, "Policy Condition failed"),
        ({"x-amz-meta-seed": "7"}, "Extra input fields: x-amz-meta-seed"),
    ],
)
def test_a_changed_or_added_field_is_refused(change: dict[str, str], why: str) -> None:
    # Given a signed form whose client changed or added a field
    form = signed_form() | change
    # When it is checked / Then it is refused, saying which rule
    with pytest.raises(FormRefusedError, match=why) as refused:
        check(form)
    assert (refused.value.code, refused.value.status) == ("AccessDenied", 403)


def test_an_expired_policy_a_wrong_signature_and_a_sigv2_form_are_refused() -> None:
    # Given a signed form
    form = signed_form()
    # When it is checked after its 15 minutes, with another secret, or as SigV2
    # Then each is refused
    with pytest.raises(FormRefusedError, match="Policy expired"):
        check(form, later=901)
    with pytest.raises(FormRefusedError, match="signature"):
        check(form, secret="another-secret")
    with pytest.raises(FormRefusedError, match="Signature Version 4"):
        check({k: v for k, v in form.items() if k != "x-amz-algorithm"})


@pytest.mark.parametrize(("size", "code"), [(0, "EntityTooSmall"), (1001, "EntityTooLarge")])
def test_a_file_outside_the_size_range_is_refused_with_400(size: int, code: str) -> None:
    # Given a form for 1..1000 bytes / When a file of another size comes with it
    # Then S3's 400 for that side of the range
    with pytest.raises(FormRefusedError) as refused:
        check(signed_form(), size=size)
    assert (refused.value.code, refused.value.status) == (code, 400)
