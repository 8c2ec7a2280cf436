"""moto's corrections (local/moto_fixes.py) on a real moto server over HTTP, called as the
local run's functions call it: many requests at once, each on its own server thread."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from kontext_tools.local.moto_fixes import (
    DYNAMODB_ITEM_CALLS,
    dynamodb_item_calls_atomic,
    moto_as_aws,
)
from kontext_tools.local.stack import load_template
from tests.conftest import ROOT

TABLE = "items"
CALLS = 400
THREADS = 16


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    """A DynamoDB client of a moto server on 127.0.0.1 holding one table; the server's
    state is reset after the module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # One attempt, and a read timeout: a request that waits on a lock fails, not hangs.
    config = Config(
        retries={"total_max_attempts": 1}, read_timeout=10, max_pool_connections=THREADS
    )
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=config)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield client
    finally:
        httpx.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Python switches threads every 5 ms; switching far more often lets requests
    interleave inside one moto call, as they do on a busy machine."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def add_one(client: Any, name: str) -> None:
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": name}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )


def count(client: Any, name: str) -> int:
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": name}}, ConsistentRead=True)
    return int(item["Item"]["n"]["N"])


def test_concurrent_adds_to_one_item_count_every_call(
    dynamodb: Any, frequent_switches: None
) -> None:
    # Given moto's DynamoDB as the local run corrects it, and a counter no one has set
    with dynamodb_item_calls_atomic(), ThreadPoolExecutor(THREADS) as pool:
        # When 16 threads send it 400 UpdateItem ADD :one over HTTP, side by side
        list(pool.map(lambda _: add_one(dynamodb, "tally"), range(CALLS)))
    # Then it counts every call, as DynamoDB applies each ADD to the item's latest value
    # (moto alone loses a few: two ADDs read the same old value and both write it plus one)
    assert count(dynamodb, "tally") == CALLS


def test_two_local_runs_in_one_process_still_answer_item_calls(dynamodb: Any) -> None:
    # Given two local runs' corrections active at once in one process, as a test module's
    # pipeline and a test's own pipeline are: the fix is stacked on itself
    from moto.dynamodb.models import DynamoDBBackend

    originals = [getattr(DynamoDBBackend, name) for name in DYNAMODB_ITEM_CALLS]
    with moto_as_aws(), moto_as_aws():
        # When an item is updated alone, by a transaction (whose item calls run inside
        # its own) and by 20 calls at once
        add_one(dynamodb, "stacked")
        update = {
            "TableName": TABLE,
            "Key": {"pk": {"S": "stacked"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        dynamodb.transact_write_items(TransactItems=[{"Update": update}])
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: add_one(dynamodb, "stacked"), range(20)))
        # Then each answers at once (none waits on the lock its own thread holds) and counts
        assert count(dynamodb, "stacked") == 22
    # And once both runs stop, moto's methods are its own again
    assert [getattr(DynamoDBBackend, name) for name in DYNAMODB_ITEM_CALLS] == originals


def test_no_table_of_the_stack_has_a_stream_that_would_run_inside_the_lock() -> None:
    # Given the stack's template
    resources = load_template(ROOT / "template.yaml")["Resources"].values()
    # When its tables are read
    tables = [item for item in resources if item["Type"] == "AWS::DynamoDB::Table"]
    # Then none has a stream: moto runs a stream's Lambda trigger inside the write, under
    # the DynamoDB lock, and a trigger that called DynamoDB would wait on that lock
    assert tables
    assert [table for table in tables if "StreamSpecification" in table["Properties"]] == []
