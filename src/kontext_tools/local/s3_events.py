"""S3 event notifications as S3 sends them, where moto's lack fields.

moto's notification records carry the object's key, size and ETag only. S3's also carry
`versionId` (in a versioned bucket) and a `sequencer` (always): "The sequencer key
provides a way to determine the sequence of events ... a hexadecimal value" (S3 user
guide, "Event message structure"). The pipeline names each job from the version id, so a
local run without it would name jobs differently from AWS, and a backfill (which reads the
version id from the object) would not recognise the trigger's jobs. So the local S3 adds
both, as S3 would.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_SEQUENCE = itertools.count(1)
_SEQUENCE_LOCK = threading.Lock()


@contextmanager
def s3_event_versions() -> Iterator[None]:
    """While active, moto's S3 notifications carry versionId and a sequencer."""
    from moto.s3 import notifications  # noqa: PLC0415 - local run only

    # send_event looks the builder up on its module at each notification.
    original: Callable[..., dict[str, Any]] = getattr(notifications, "_get_s3_event")  # noqa: B009

    def with_version(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
        body = original(event_name, bucket, key, notification_id)
        with _SEQUENCE_LOCK:
            sequencer = f"{next(_SEQUENCE):016X}"
        version = getattr(key, "version_id", None)
        for record in body.get("Records", []):
            described = record["s3"]["object"]
            described["sequencer"] = sequencer
            if version and version != "null":
                described["versionId"] = version
        return body

    setattr(notifications, "_get_s3_event", with_version)  # noqa: B010
    try:
        yield
    finally:
        setattr(notifications, "_get_s3_event", original)  # noqa: B010
