"""The benchmarks' arithmetic: the figures they print and the README quotes."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from benchmarks.burst import BurstSeen, burst_result, queued_transitions
from benchmarks.costs import per_function
from benchmarks.first_job import first_job_lines
from benchmarks.job_runs import JobFigures, percentile
from benchmarks.readme import copy_table, overhead_table
from kontext_tools.local.lambdas import InvocationRecord


def invocation(function: str, seconds: float, memory_mb: int = 512) -> InvocationRecord:
    return InvocationRecord(
        function_name=f"stack-{function}",
        event={},
        errored=False,
        error_type=None,
        duration_seconds=seconds,
        memory_mb=memory_mb,
    )


def test_each_function_is_billed_as_lambda_bills_it_per_job() -> None:
    # Given two jobs' invocations: two of StartEdit (one under Lambda's 1 ms minimum)
    invocations = [
        invocation("StartEditFunction", 0.0004),
        invocation("StartEditFunction", 0.2996),
        invocation("SubmitEditFunction", 1.0, memory_mb=1024),
    ]
    # When they are summed per function
    functions = per_function(invocations, jobs=2)
    # Then each is named by its function, billed at least 1 ms, and divided by the jobs
    start, submit = functions["StartEditFunction"], functions["SubmitEditFunction"]
    assert list(functions) == ["StartEditFunction", "SubmitEditFunction"]
    assert start["invocations_per_job"] == 1.0
    assert math.isclose(start["mean_duration_s"], (0.001 + 0.2996) / 2)
    assert math.isclose(start["gb_seconds_per_job"], (0.001 + 0.2996) * 512 / 1024 / 2)
    assert math.isclose(submit["gb_seconds_per_job"], 0.5)


def test_only_looks_that_found_the_request_queued_count_as_waiting() -> None:
    # Given CheckStatus looks: queued twice, then running, and an unreadable output
    def look(status: str) -> dict[str, object]:
        output = json.dumps({"status": status})
        return {"stateExitedEventDetails": {"name": "CheckStatus", "output": output}}

    history = [
        look("IN_QUEUE"),
        look("IN_QUEUE"),
        look("IN_PROGRESS"),
        {"stateExitedEventDetails": {"name": "CheckStatus", "output": "not json"}},
        {"stateExitedEventDetails": {"name": "SubmitEdit", "output": "{}"}},
    ]
    # When the queued transitions are counted
    # Then each queued look cost its Wait, CheckStatus and Choice
    assert queued_transitions(history) == 6


def model_request(submitted: float, started: float | None, *, cancelled: bool = False) -> object:
    return SimpleNamespace(
        submitted_at=submitted, started_at=started, cancelled=cancelled, cancel_requested=False
    )


def test_a_bursts_result_counts_duplicates_cancellations_and_the_longest_wait() -> None:
    # Given a burst of 3 uploads: one notified twice, one failed, one request cancelled
    ok = JobFigures(0.1, 1.0, 6, "SUCCEEDED")
    seen = BurstSeen(
        figures=[ok, ok, JobFigures(0.1, 0.0, 0, "FAILED not_an_image")],
        wall=12.0,
        executions=3,
        waiting=[0, 3, 6],
        outputs=2,
        notified=["inputs/bench/burst-0.png", "inputs/bench/burst-0.png"],
        requests=[model_request(10.0, 10.5), model_request(11.0, 15.0, cancelled=True)],
        transitions=6.0,
        cost={"total": 0.2},
    )
    # When the result is worked out
    result = burst_result(3, seen)
    # Then the figures the README quotes come out of what was seen
    assert (result["notifications"], result["duplicates"]) == (2, 1)
    assert (result["model_submits"], result["cancelled"], result["succeeded"]) == (2, 1, 2)
    assert result["failures"] == ["FAILED not_an_image"]
    assert result["longest_queue_wait_s"] == 4.0
    assert result["submit_rate_per_s"] == 2.0
    assert result["queued_transitions_per_job_mean"] == 3
    assert result["model_drain_seconds"] == 1.5  # 3 images on 2 runners of 1 s


def test_a_single_submit_has_no_rate_and_an_empty_sample_no_percentile() -> None:
    # Given one submit and no figures
    seen = BurstSeen([], 1.0, 0, [], 0, [], [model_request(1.0, None)], 0.0, {"total": 0.0})
    # When the figures are worked out / Then there is nothing to divide by: NaN, not 0
    assert math.isnan(burst_result(1, seen)["submit_rate_per_s"])
    assert math.isnan(percentile([], 0.95))
    assert percentile([3.0, 1.0, 2.0], 0.95) == 3.0


def test_the_readmes_tables_have_a_rule_and_a_line_per_row() -> None:
    # Given one overhead row and one output-copy row as a saved run holds them
    overhead = {
        "rows": [
            {
                "mode": "poll, adaptive",
                "model_seconds": 5.0,
                "model_time_spread": 0.1,
                "overhead_median_s": 0.4321,
                "overhead_p95_s": 0.5,
                "transitions_per_job": 6.0,
                "status_requests_per_job": 1.25,
                "cost_per_1000_images_usd": 0.1784,
            }
        ]
    }
    copy = {
        "rows": [
            {
                "size_mb": 10,
                "copy_mb_per_s": 66.6,
                "copy_peak_extra_rss_mb": 23.34,
                "upload_only_mb_per_s": 73.2,
                "ratio_to_upload_only": 0.91,
            }
        ]
    }
    # When the tables are written
    overhead_lines = overhead_table(overhead)
    copy_lines = copy_table(copy)
    # Then each has its header, a rule of as many columns, and the row's figures
    assert overhead_lines == [
        "| completion | model run | overhead median | p95 | transitions / job "
        "| status requests / job | AWS cost / 1,000 |",
        "|---|---|---|---|---|---|---|",
        "| poll, adaptive (template defaults, status stream) | 5 s ±10% | 0.43 s | 0.50 s "
        "| 6.0 | 1.2 | $0.178 |",
    ]
    assert copy_lines[1] == "|---|---|---|---|---|"
    assert copy_lines[2] == "| 10 MB | 67 MB/s | 23.3 MB | 73 MB/s | 0.91 |"


def test_the_first_job_lines_count_its_watch_in_the_cost_of_1000_images() -> None:
    # Given a first-job row (its cost per 1,000 first jobs) and the steady row of its model
    first = {
        "rows": [
            {
                "model_seconds": 5.0,
                "model_time_spread": 0.1,
                "runs": 5,
                "succeeded": 5,
                "overheads_s": [0.5, 0.6, 0.7, 0.8, 0.9],
                "overhead_median_s": 0.7,
                "status_requests_per_job": 1.0,
                "transitions_per_job": 6.0,
                "check_status_gb_seconds_per_job": 1.5,
                "cost_per_1000_images_usd": 1.0,
            }
        ]
    }
    steady = [
        {
            "mode": "poll, adaptive",
            "model_seconds": 5.0,
            "model_time_spread": 0.1,
            "cost_per_1000_images_usd": 0.19,
        }
    ]
    # When its README lines are written
    lines = first_job_lines(first, steady)
    # Then the row is there, the overhead goal is met, and 1,000 images (one first job,
    # 999 steady) cost 1.0 / 1000 + 0.19 * 0.999 = $0.191: met
    assert lines[2].startswith("| 5 s ±10% | 5/5 | 0.70 s | 0.50, 0.60, 0.70, 0.80, 0.90 |")
    assert lines[-2].endswith("0.70 s. met.")
    assert "$0.191. met." in lines[-1]
