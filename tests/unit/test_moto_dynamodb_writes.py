"""The local DynamoDB applies each item write atomically, as DynamoDB does
(moto_fixes.dynamodb_writes_atomic): concurrent ADDs on one new counter all count."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from kontext_tools.local.moto_fixes import dynamodb_writes_atomic
from kontext_tools.local.patching import replaced

WRITERS = 8


@pytest.fixture
def endpoint() -> Iterator[str]:
    """moto's threaded server on 127.0.0.1, whose DynamoDB takes a moment between reading
    an item and writing it back: the window concurrent requests meet in, made wide enough
    to be met every time."""
    import moto.dynamodb.models as dynamodb_models

    original = dynamodb_models.create_condition_expression_parser

    def slow_parser(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.005)
        return original(*args, **kwargs)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        with replaced(dynamodb_models, "create_condition_expression_parser", slow_parser):
            yield f"http://{host}:{port}"
    finally:
        # The server's state is the process's own moto state: leave none for other tests.
        httpx.post(f"http://{host}:{port}/moto-api/reset", timeout=10)
        server.stop()


def concurrent_adds(endpoint: str, counters: int) -> list[int]:
    """Each counter is a new item that WRITERS clients ADD 1 to at once; what each holds."""

    def client() -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    table = client()
    table.create_table(
        TableName="jobs",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    writers = [client() for _ in range(WRITERS)]
    totals = []
    for counter in range(counters):
        start = threading.Barrier(WRITERS)
        key = {"pk": {"S": f"backfill#{counter}"}}

        def add(writer: Any, key: dict[str, Any] = key, start: threading.Barrier = start) -> None:
            start.wait()
            writer.update_item(
                TableName="jobs",
                Key=key,
                UpdateExpression="ADD started :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

        threads = [threading.Thread(target=add, args=(writer,)) for writer in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        item = table.get_item(TableName="jobs", Key=key, ConsistentRead=True)["Item"]
        totals.append(int(item["started"]["N"]))
    return totals


@pytest.mark.parametrize(
    ("fix", "all_count"),
    [(dynamodb_writes_atomic, True), (nullcontext, False)],
    ids=["as DynamoDB", "moto alone"],
)
def test_concurrent_adds_on_a_new_counter_all_count(
    endpoint: str, fix: Callable[[], AbstractContextManager[Any]], all_count: bool
) -> None:
    # Given the local DynamoDB with the fix (and, to show what it corrects, without)
    with fix():
        # When eight clients add 1 to a new counter at once, three times over
        totals = concurrent_adds(endpoint, counters=3)
    # Then with the fix every increment counts, as on DynamoDB; moto alone loses some
    assert (totals == [WRITERS] * 3) is all_count, totals
