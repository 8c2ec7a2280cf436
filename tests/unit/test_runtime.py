"""The Runtime: clients built once and only when first used; each step's policy from the
settings; a setting only some functions need is checked where it is used."""

from __future__ import annotations

from typing import Any

import pytest
from kontext_pipeline.core.config import PipelineSettings
from kontext_pipeline.core.errors import ConfigurationError
from kontext_pipeline.runtime import Runtime
from kontext_pipeline.steps.await_webhook import AwaitWebhookSettings
from kontext_pipeline.storage.scope import EditScope

from tests.fakes import FakeQueue


def test_clients_are_built_when_first_used_and_then_kept(aws: Any) -> None:
    # Given a fresh Runtime that counts the clients it makes
    made: list[str] = []

    class CountingRuntime(Runtime[PipelineSettings]):
        def make_client(self, service: str) -> object:
            made.append(service)
            return super().make_client(service)

    runtime = CountingRuntime(settings=PipelineSettings())
    # When nothing has asked for a client / Then none was made
    assert made == []
    # When one is asked for twice / Then it is made once and the same one is returned
    assert runtime.s3 is runtime.s3
    assert made == ["s3"]


def test_each_steps_policy_comes_from_the_settings() -> None:
    # Given settings an operator chose
    settings = PipelineSettings(
        input_prefix="in/",
        output_prefix="out/",
        output_bucket="results",
        max_input_bytes=1000,
        default_prompt="make it snow",
        completion_mode="webhook",
        webhook_url="https://hook.example/",
        queue_wait_seconds=600,
        poll_min_seconds=3,
        poll_max_seconds=9,
    )
    runtime = Runtime(settings=settings)
    # When the steps' policies are built / Then each carries the settings its step reads
    assert runtime.edit_scope == EditScope("in/", "out/", "results")
    policy = runtime.submit_policy
    assert (policy.max_input_bytes, policy.default_prompt) == (1000, "make it snow")
    assert policy.model_webhook_url() == "https://hook.example/"
    assert policy.queue_wait_seconds == 600
    assert (runtime.poll_plan.min_seconds, runtime.poll_plan.max_seconds) == (3, 9)


def test_a_setting_only_some_functions_need_fails_where_it_is_used(aws: Any) -> None:
    # Given no JOBS_TABLE and no STATE_MACHINE_ARN
    runtime = Runtime(settings=PipelineSettings())
    # When a step that needs one is wired / Then it fails as a missing setting, naming it
    with pytest.raises(ConfigurationError, match="JOBS_TABLE is not set") as caught:
        _ = runtime.jobs
    assert caught.value.reason == "missing_setting"
    with pytest.raises(ConfigurationError, match="STATE_MACHINE_ARN is not set"):
        _ = runtime.job_starter


def test_a_member_built_from_a_piece_the_functions_settings_lack_fails_naming_it() -> None:
    # Given the settings AwaitWebhook reads (the jobs table, no polling)
    runtime = Runtime(settings=AwaitWebhookSettings(jobs_table="jobs"))
    # When something asks it for the poll plan / Then it fails as a missing setting, naming
    # the piece, instead of building one from defaults it was never given
    with pytest.raises(ConfigurationError, match="AwaitWebhookSettings has no PollSettings"):
        _ = runtime.poll_plan


def test_a_model_queue_handed_in_is_the_one_used() -> None:
    # Given a Runtime with a queue of the test's own
    queue = FakeQueue()
    runtime = Runtime(settings=PipelineSettings(), queue_override=queue)
    # When a step asks for the model's queue / Then it gets that one, no key is read
    assert runtime.model_queue() is queue


def test_without_a_queue_handed_in_the_client_is_built_from_the_settings(aws: Any) -> None:
    # Given settings with a key for a local run
    runtime = Runtime(settings=PipelineSettings(fal_key="local-key"))
    # When the model's queue is asked for twice / Then a client is built per call
    assert runtime.model_queue() is not runtime.model_queue()


def test_the_notifier_is_built_once_per_warm_function(aws: Any) -> None:
    # Given a Runtime with a topic and a jobs table, and two invocations' contexts
    runtime = Runtime(settings=PipelineSettings(topic_arn="arn:topic", jobs_table="jobs"))
    first, second = object(), object()
    # When each invocation asks for the notifier
    notifier = runtime.notifier(first)  # type: ignore[arg-type]
    again = runtime.notifier(second)  # type: ignore[arg-type]
    # Then it is one Notifier: its idempotency config, store and publish are built once
    assert again is notifier
