"""S3's own limits, where moto is more lenient than S3.

Real S3 refuses user metadata over 2 KB (the bytes of every x-amz-meta-* name and value,
UTF-8) with 400 MetadataTooLarge; moto stores any amount. A local run that accepted what
AWS refuses would hide exactly the uploads that fail in production (a long prompt in
metadata), so the local S3 refuses them as AWS does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# S3 user guide, "Working with object metadata": user-defined metadata is limited to 2 KB.
USER_METADATA_LIMIT_BYTES = 2048
_PREFIX = "x-amz-meta-"


def user_metadata_size(headers: dict[str, Any]) -> int:
    """Bytes of user-defined metadata, as S3 counts them (names without the prefix)."""
    size = 0
    for name, value in headers.items():
        if isinstance(name, str) and name.lower().startswith(_PREFIX):
            text = value[0] if isinstance(value, list) else value
            size += len(name[len(_PREFIX) :].encode()) + len(str(text).encode())
    return size


@contextmanager
def s3_metadata_limit() -> Iterator[None]:
    """While active, moto's S3 answers MetadataTooLarge above the limit, as S3 does."""
    from moto.s3 import responses  # noqa: PLC0415 - local run only
    from moto.s3.exceptions import S3ClientError  # noqa: PLC0415

    # moto's S3 handlers look the function up on their module at each request.
    original: Callable[[dict[str, Any]], Any] = getattr(responses, "metadata_from_headers")  # noqa: B009

    def metadata_within_limit(headers: dict[str, Any]) -> Any:
        size = user_metadata_size(dict(headers.items()))
        if size > USER_METADATA_LIMIT_BYTES:
            raise S3ClientError(
                "MetadataTooLarge",
                "Your metadata headers exceed the maximum allowed metadata size "
                f"({size} bytes; the limit is {USER_METADATA_LIMIT_BYTES}).",
            )
        return original(headers)

    setattr(responses, "metadata_from_headers", metadata_within_limit)  # noqa: B010
    try:
        yield
    finally:
        setattr(responses, "metadata_from_headers", original)  # noqa: B010
