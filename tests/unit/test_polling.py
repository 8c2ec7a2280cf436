"""The adaptive poll plan: few polls for a typical run, bounded waits, whole seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kontext_pipeline.polling import PollPlan

PLAN = PollPlan(min_seconds=2, max_seconds=30, expected_model_seconds=20)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def running_for(seconds: float) -> int:
    return PLAN.while_running(NOW - timedelta(seconds=seconds), NOW)


def test_first_wait_reaches_the_early_edge_of_a_typical_run() -> None:
    # Given a model that typically runs 20 s, When the request is submitted,
    # Then the first poll comes at 90% of that
    assert PLAN.after_submit(queue_position=0) == 18


def test_queue_position_lengthens_the_wait_up_to_the_maximum() -> None:
    assert PLAN.while_queued(1) == 28
    assert PLAN.while_queued(2) == 30
    assert PLAN.while_queued(None) == 18


def test_a_young_run_is_left_alone_until_the_early_edge() -> None:
    # Given a run 5 s old, Then the next poll lands at 18 s
    assert running_for(5) == 13


def test_inside_the_typical_window_polls_come_every_minimum_interval() -> None:
    # Given runs between 90% and 110% of the typical time, Then each waits the minimum
    assert [running_for(seconds) for seconds in (17, 18, 20, 22)] == [2, 2, 2, 2]


def test_overdue_runs_back_off_in_proportion_and_up_to_the_maximum() -> None:
    # Given runs later and later past the typical window
    waits = [running_for(seconds) for seconds in (23, 30, 40, 60, 200)]

    # Then the waits grow, from the minimum to the maximum
    assert waits[0] == 2
    assert waits == sorted(waits)
    assert waits[-1] == 30


def test_a_30_second_run_costs_at_most_four_polls() -> None:
    # Given the plan for a 30 s model and runs anywhere in its typical window
    plan = PollPlan(min_seconds=2, max_seconds=30, expected_model_seconds=30)
    for run_seconds in (27.5, 30, 33):
        # When it polls from submit until the run is seen complete
        clock, polls = float(plan.after_submit(0)), 1
        while clock < run_seconds:
            clock += plan.while_running(NOW - timedelta(seconds=clock), NOW)
            polls += 1

        # Then it needs four polls or fewer (3 transitions each), and sees the end promptly
        assert polls <= 4
        assert clock - run_seconds <= 2
