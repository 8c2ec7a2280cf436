"""Where moto differs from AWS in what the pipeline relies on, corrected for the local run.

- S3's 2 KB limit on user metadata (`s3_metadata_limit`): real S3 refuses more (the bytes
  of every x-amz-meta-* name and value, UTF-8) with 400 MetadataTooLarge; moto stores any
  amount. A local run that accepted what AWS refuses would hide exactly the uploads that
  fail in production (a long prompt in metadata), so the local S3 refuses them as AWS does.
- S3 event notifications as S3 sends them (`s3_event_versions`): moto's records carry the
  object's key, size and ETag only. S3's also carry `versionId` (in a versioned bucket)
  and a `sequencer` (always): "The sequencer key provides a way to determine the sequence
  of events ... a hexadecimal value" (S3 user guide, "Event message structure"). The
  pipeline names each job from the version id, so a local run without it would name jobs
  differently from AWS, and a backfill (which reads the version id from the object) would
  not recognise the trigger's jobs. So the local S3 adds both, as S3 would.
- `SendTaskFailure` keeps its cause (`send_task_failure_keeps_its_cause`): over moto's
  HTTP API it passes only the token and the error name on to the ASL interpreter,
  although the interpreter takes a cause too; on AWS the cause reaches the state's Catch
  (`$.Cause`). The pipeline's failure messages for a job failed by a webhook travel in
  that cause, so without it a local run would report less than AWS does.

- DynamoDB item calls are atomic (`dynamodb_item_calls_atomic`): DynamoDB applies each
  item write whole to the item's latest state (an `ADD n :one`, a conditional write, a
  transaction), and a read sees a write whole or not at all. moto's threaded server runs
  requests side by side on shared objects, so two first `ADD`s on one item can each create
  it and one increment is lost (a backfill of 51 objects once tallied 50). The local
  DynamoDB runs its item calls one at a time.
- Browser-based uploads (`s3_post_policy`, s3_post_forms.py): a POST form is checked by
  its signed policy and authorized as its signer, as S3 does.

`moto_as_aws()` applies all of them while it is active.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from kontext_tools.local.patching import replaced
from kontext_tools.local.s3_post_forms import s3_post_policy

# S3 user guide, "Working with object metadata": user-defined metadata is limited to 2 KB.
USER_METADATA_LIMIT_BYTES = 2048
_PREFIX = "x-amz-meta-"

_SEQUENCE = itertools.count(1)
_SEQUENCE_LOCK = threading.Lock()


@contextmanager
def moto_as_aws() -> Iterator[None]:
    """While active, moto behaves as AWS does where this module corrects it."""
    with ExitStack() as fixes:
        fixes.enter_context(s3_metadata_limit())
        fixes.enter_context(send_task_failure_keeps_its_cause())
        fixes.enter_context(s3_event_versions())
        fixes.enter_context(s3_post_policy())
        fixes.enter_context(dynamodb_item_calls_atomic())
        yield


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

    with replaced(responses, "metadata_from_headers", metadata_within_limit):
        yield


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

    with replaced(notifications, "_get_s3_event", with_version):
        yield


# The DynamoDBBackend methods every item call of the pipeline goes through (GetItem,
# PutItem, UpdateItem, DeleteItem, TransactWriteItems; BatchWriteItem's handler calls
# put_item and delete_item per item, which is as atomic as DynamoDB makes a batch).
DYNAMODB_ITEM_CALLS = ("get_item", "put_item", "update_item", "delete_item", "transact_write_items")
# One lock for every table (a transaction spans tables), re-entrant because it is entered
# again on one thread: a transaction calls the item methods inside its own call, and two
# local runs in one process (a test module's pipeline and a test's own) stack this fix.
_DYNAMODB_LOCK = threading.RLock()


@contextmanager
def dynamodb_item_calls_atomic() -> Iterator[None]:
    """While active, moto's DynamoDB runs its item calls one at a time, so each applies
    whole, as DynamoDB applies an item write. Only the backend's work is inside the lock,
    not a request's parsing or IAM check; nothing in these methods waits on another
    request, unless a table had a stream with a Lambda trigger (moto runs it inside the
    write): the stack has none (tests/unit/test_moto_fixes.py holds that)."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - local run only

    def one_at_a_time(method: Callable[..., Any]) -> Callable[..., Any]:
        def locked(*args: Any, **kwargs: Any) -> Any:
            with _DYNAMODB_LOCK:
                return method(*args, **kwargs)

        return locked

    with ExitStack() as calls:
        for name in DYNAMODB_ITEM_CALLS:
            original = getattr(DynamoDBBackend, name)
            calls.enter_context(replaced(DynamoDBBackend, name, one_at_a_time(original)))
        yield


@contextmanager
def send_task_failure_keeps_its_cause() -> Iterator[None]:
    """While active, SendTaskFailure over moto's HTTP API hands its cause on."""
    from moto.core.responses import EmptyResult  # noqa: PLC0415 - local run only
    from moto.stepfunctions.responses import StepFunctionResponse  # noqa: PLC0415

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    with replaced(StepFunctionResponse, "send_task_failure", send_task_failure):
        yield
