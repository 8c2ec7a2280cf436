"""The uploaded object, on moto S3: what the model cannot use is refused before anything is
paid for; metadata and the version are read; an input too large to send inline is refused."""

from __future__ import annotations

from typing import Any

import pytest
from kontext_pipeline.core.errors import InvalidInputError
from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.storage.inspection import (
    image_dimensions,
    inspect_source,
    presign_source,
    sniff_image_type,
    source_as_data_uri,
)

from tests.conftest import make_image

BUCKET = "kontext-images-test"


@pytest.fixture
def s3(aws: Any) -> Any:
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_inspection_rejects_what_the_model_cannot_use(s3: Any) -> None:
    # Given an empty object, a text file, an image over the size limit, and a missing key
    s3.put_object(Bucket=BUCKET, Key="inputs/empty.png", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="inputs/text.png", Body=b"hello world, not an image")
    s3.put_object(Bucket=BUCKET, Key="inputs/big.png", Body=make_image())
    cases = {
        "inputs/empty.png": "empty_object",
        "inputs/text.png": "not_an_image",
        "inputs/big.png": "object_too_large",
        "inputs/gone.png": "object_not_found",
    }
    for key, reason in cases.items():
        # When each is inspected / Then each is refused with its own reason
        with pytest.raises(InvalidInputError) as caught:
            inspect_source(
                s3, SourceObject(bucket=BUCKET, key=key), max_bytes=100, max_pixels=10_000
            )
        assert caught.value.reason == reason, key


def test_inspection_reads_metadata_and_pins_the_version(s3: Any) -> None:
    # Given an image with a prompt in metadata, in a versioned bucket
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(
        Bucket=BUCKET, Key="inputs/a.png", Body=make_image(), Metadata={"prompt": "hello"}
    )
    # When it is inspected without a version
    inspected = inspect_source(
        s3,
        SourceObject(bucket=BUCKET, key="inputs/a.png"),
        max_bytes=10_000_000,
        max_pixels=10_000,
    )
    # Then its metadata, type and version are those of the object as it is now
    assert inspected.metadata == {"prompt": "hello"}
    assert inspected.image_type == "image/png"
    assert inspected.source.version_id == put["VersionId"]


def test_an_object_written_while_versioning_was_off_is_read_unpinned(s3: Any) -> None:
    # Given an image in an unversioned bucket, named with S3's "null" version id
    s3.put_object(Bucket=BUCKET, Key="inputs/n.png", Body=make_image())
    source = SourceObject(bucket=BUCKET, key="inputs/n.png", version_id="null")
    # When it is inspected and presigned for the model
    inspected = inspect_source(s3, source, max_bytes=10_000_000, max_pixels=10_000)
    url = presign_source(s3, inspected.source, expires_seconds=60)
    # Then it is read and presigned without a version pin
    assert inspected.image_type == "image/png"
    assert "versionId" not in url
    # And a real version id is a pin
    pinned = source.model_copy(update={"version_id": "v1"})
    assert "versionId=v1" in presign_source(s3, pinned, expires_seconds=60)


def test_an_image_with_too_many_pixels_is_refused(s3: Any) -> None:
    # Given a 200x100 image and a limit of 19,999 pixels
    s3.put_object(Bucket=BUCKET, Key="inputs/wide.png", Body=make_image(size=(200, 100)))
    # When it is inspected / Then it is refused, naming its size
    with pytest.raises(InvalidInputError) as caught:
        inspect_source(
            s3,
            SourceObject(bucket=BUCKET, key="inputs/wide.png"),
            max_bytes=10_000_000,
            max_pixels=19_999,
        )
    assert caught.value.reason == "image_too_large"
    assert "200x100" in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_dimensions_are_read_from_the_header(fmt: str) -> None:
    # Given a 123x45 image in each format / When its header is read / Then so are its sides
    assert image_dimensions(make_image(fmt, (123, 45))) == (123, 45)


def test_image_types_are_sniffed_from_bytes() -> None:
    # Given the first bytes of images and of a PDF
    # When sniffed / Then images are named by type, and the PDF is not an image
    assert sniff_image_type(make_image("PNG")) == "image/png"
    assert sniff_image_type(make_image("JPEG")) == "image/jpeg"
    assert sniff_image_type(make_image("WEBP")) == "image/webp"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"%PDF-1.7") is None


def test_an_input_too_large_to_send_inline_is_refused_before_it_is_read(s3: Any) -> None:
    # Given an 8 MB input (over 10 MB once base64-encoded) and inline transfer
    big = make_image("PNG", (64, 48)) + b"\0" * (8 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="inputs/big.png", Body=big)
    inspected = inspect_source(
        s3, SourceObject(bucket=BUCKET, key="inputs/big.png"), max_bytes=2**30, max_pixels=10**8
    )
    # When it is made a data: URI / Then it is refused with the limit and the way out
    with pytest.raises(InvalidInputError) as caught:
        source_as_data_uri(s3, inspected)
    assert caught.value.reason == "input_too_large_inline"
    assert "10 MB" in caught.value.message
    assert "InputTransfer=presigned" in caught.value.message
    # And a small one is still sent inline
    s3.put_object(Bucket=BUCKET, Key="inputs/small.png", Body=make_image())
    small = inspect_source(
        s3, SourceObject(bucket=BUCKET, key="inputs/small.png"), max_bytes=2**30, max_pixels=10**8
    )
    assert source_as_data_uri(s3, small).startswith("data:image/png;base64,")
