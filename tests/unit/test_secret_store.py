"""Secrets through Powertools Parameters: one store per warm function, read from its cache."""

from __future__ import annotations

from typing import Any

import pytest
from kontext_pipeline.core.config import PipelineSettings
from kontext_pipeline.core.errors import ConfigurationError
from kontext_pipeline.core.secrets import SecretStore
from kontext_pipeline.runtime import Runtime


def test_a_secret_is_read_from_the_cache_until_it_expires(aws: Any) -> None:
    # Given a secret read once through the store
    secrets = aws.client("secretsmanager")
    arn = secrets.create_secret(Name="fal-key", SecretString="first")["ARN"]
    store = SecretStore(secrets)
    assert store.read(arn, what="the API key secret") == "first"
    # When the secret is rotated and read again at once
    secrets.put_secret_value(SecretId=arn, SecretString="second")
    # Then the cached value answers (a rotation lands when the cache expires, minutes later)
    assert store.read(arn, what="the API key secret") == "first"


def test_the_runtime_keeps_one_store(aws: Any) -> None:
    # Given a Runtime
    runtime = Runtime(settings=PipelineSettings())
    # When its store is asked for twice / Then it is the same store, cache and all
    assert runtime.secrets is runtime.secrets


def test_an_unreadable_secret_names_what_it_is(aws: Any) -> None:
    # Given a store and a secret that does not exist
    store = SecretStore(aws.client("secretsmanager"))
    # When it is read / Then the error says which secret, as secret_unavailable
    with pytest.raises(ConfigurationError, match="the API key secret") as caught:
        store.read("missing", what="the API key secret")
    assert caught.value.reason == "secret_unavailable"
