"""The adaptive poll plan: few polls for a typical run, bounded waits, whole seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kontext_pipeline.polling import PollPlan

PLAN = PollPlan(min_seconds=2, max_seconds=30, expected_model_seconds=20)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_first_wait_is_about_one_model_run() -> None:
    assert PLAN.after_submit(queue_position=0) == 20


def test_queue_position_lengthens_the_wait_up_to_the_maximum() -> None:
    assert PLAN.while_queued(2) == 30
    assert PLAN.while_queued(None) == 20


def test_running_waits_for_the_expected_remainder() -> None:
    assert PLAN.while_running(NOW - timedelta(seconds=5), NOW, polls_while_running=0) == 15


def test_overdue_runs_back_off_from_the_minimum() -> None:
    late = NOW - timedelta(seconds=60)
    waits = [PLAN.while_running(late, NOW, polls_while_running=n) for n in range(8)]
    assert waits[0] == 2
    assert waits == sorted(waits)
    assert max(waits) == 30
