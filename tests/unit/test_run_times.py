"""What the model recently took, kept per model in the jobs table (the poll plan's typical run)."""

from __future__ import annotations

from typing import Any

import pytest
from kontext_pipeline.run_times import NEW_RUN_WEIGHT, RecentRunTimes


def test_nothing_recorded_means_no_typical_run(jobs_table: Any) -> None:
    # Given a model no job has completed on
    run_times = RecentRunTimes(jobs_table, "jobs", "fal-ai/flux-pro/kontext/max")
    # When the typical run is read / Then there is none (the configured guess is used)
    assert run_times.typical_seconds() is None


def test_recent_runs_count_most_and_each_model_keeps_its_own(jobs_table: Any) -> None:
    # Given a model whose runs went from 20 s to 5 s, and another model
    kontext = RecentRunTimes(jobs_table, "jobs", "fal-ai/flux-pro/kontext/max")
    other = RecentRunTimes(jobs_table, "jobs", "fal-ai/other")
    kontext.record(20.0)
    other.record(60.0)
    # When five 5 s runs complete
    for _ in range(5):
        kontext.record(5.0)
    # Then the typical run has moved most of the way to 5 s, and the other model's is its own
    expected = 5.0 + 15.0 * (1 - NEW_RUN_WEIGHT) ** 5
    assert kontext.typical_seconds() == pytest.approx(expected, abs=0.01)
    assert other.typical_seconds() == 60.0


def test_an_unreadable_table_is_no_reason_to_fail_a_job(aws: Any) -> None:
    # Given a table that does not exist / When a run is recorded and read back
    runs = RecentRunTimes(aws.client("dynamodb"), "missing", "fal-ai/flux-pro/kontext/max")
    runs.record(5.0)
    # Then nothing is raised, and no typical run is known
    assert runs.typical_seconds() is None
