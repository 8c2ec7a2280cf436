"""What the model recently took, kept per model in the jobs table (the poll plan's typical run)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kontext_pipeline.jobs.run_times import NEW_RUN_WEIGHT, RECORD_TTL_SECONDS, RecentRunTimes


def test_nothing_recorded_means_no_typical_run(jobs_table: Any) -> None:
    # Given a model no job has completed on
    run_times = RecentRunTimes(jobs_table, "jobs", "fal-ai/flux-pro/kontext/max")
    # When the typical run is read / Then there is none (the configured guess is used)
    assert run_times.typical_seconds() is None


def test_recent_runs_count_most_and_each_model_keeps_its_own(jobs_table: Any) -> None:
    # Given a model whose runs drift from 6 s to 5 s, and another model
    kontext = RecentRunTimes(jobs_table, "jobs", "fal-ai/flux-pro/kontext/max")
    other = RecentRunTimes(jobs_table, "jobs", "fal-ai/other")
    kontext.record(6.0)
    other.record(60.0)
    # When five 5 s runs complete
    for _ in range(5):
        kontext.record(5.0)
    # Then the typical run has moved most of the way to 5 s, and the other model's is its own
    expected = 5.0 + 1.0 * (1 - NEW_RUN_WEIGHT) ** 5
    assert kontext.typical_seconds() == pytest.approx(expected, abs=0.01)
    assert other.typical_seconds() == 60.0


@pytest.mark.parametrize(("before", "after"), [(20.0, 5.0), (5.0, 30.0)])
def test_a_model_made_faster_or_slower_is_learned_from_one_job(
    jobs_table: Any, before: float, after: float
) -> None:
    # Given a model that ran `before` seconds for a long while
    runs = RecentRunTimes(jobs_table, "jobs", "fal-ai/flux-pro/kontext/max")
    for _ in range(10):
        runs.record(before)
    # When one run of `after` seconds completes (more than half again off)
    runs.record(after)
    # Then the next job plans from that run, not from an average still near the old one
    assert runs.typical_seconds() == pytest.approx(after)


def test_a_record_past_its_ttl_is_no_typical_run_before_dynamodb_sweeps_it(
    jobs_table: Any,
) -> None:
    # Given a run recorded now
    runs = RecentRunTimes(jobs_table, "jobs", "fal-ai/flux-pro/kontext/max")
    runs.record(5.0)
    # When it is read just before and just after its TTL (the item is still in the table)
    later = time.time() + RECORD_TTL_SECONDS
    # Then it counts until then, and not after: the model may have changed meanwhile
    assert runs.typical_seconds(now=later - 60) == 5.0
    assert runs.typical_seconds(now=later + 60) is None


def test_an_unreadable_table_is_no_reason_to_fail_a_job(aws: Any) -> None:
    # Given a table that does not exist / When a run is recorded and read back
    runs = RecentRunTimes(aws.client("dynamodb"), "missing", "fal-ai/flux-pro/kontext/max")
    runs.record(5.0)
    # Then nothing is raised, and no typical run is known
    assert runs.typical_seconds() is None
