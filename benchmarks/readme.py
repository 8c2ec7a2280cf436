"""The README's Performance figures, from one saved run (benchmarks/results/latest.json).

    python -m benchmarks.readme           # print the figures' Markdown
    python -m benchmarks.readme --write   # put it between the README's bench markers

Only the tables and the goal lines are generated: every figure in them comes from the one
saved run, and each goal says met or missed from the figures themselves. The reasons for
a miss are written beside the markers, by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.first_job import first_job_lines

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "benchmarks" / "results" / "latest.json"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

# Issue 12's goals; the poll overhead and the status requests are issue 23's.
POLL_OVERHEAD_GOAL_S = 0.3
STATUS_REQUESTS_GOAL = 3
POLL_COST_GOAL = 0.20
WEBHOOK_OVERHEAD_GOAL_S = 0.3
WEBHOOK_COST_GOAL = 0.15
COLD_START_GOAL = 1.5
COPY_RATIO_GOAL = 0.9
COPY_MEMORY_GOAL_MB = 64
BURST_GOAL = 500


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _table(header: str, rows: Iterable[Any], cells: Callable[[Any], Sequence[str]]) -> list[str]:
    """A Markdown table: the header (its names between ` | `), its rule, and one line of
    cells per row."""
    return [
        f"| {header} |",
        "|" + "---|" * len(header.split(" | ")),
        *("| " + " | ".join(cells(row)) + " |" for row in rows),
    ]


def _rows(overhead: dict[str, Any]) -> list[dict[str, Any]]:
    return list(overhead["rows"])


def _find(rows: list[dict[str, Any]], mode: str, seconds: float, spread: float = 0.1) -> Any:
    for row in rows:
        if (
            row["mode"] == mode
            and row["model_seconds"] == seconds
            and abs(row["model_time_spread"] - spread) < 1e-9
        ):
            return row
    return None


OVERHEAD_HEADER = (
    "completion | model run | overhead median | p95 | transitions / job "
    "| status requests / job | AWS cost / 1,000"
)
# How the modes worth pointing out are named in the table.
MODE_NOTES = {
    "poll, adaptive": " (template defaults, status stream)",
    "poll, adaptive, no stream": " (a queue without the stream)",
    "poll, fixed 2 s": " (common pattern)",
}


def overhead_table(overhead: dict[str, Any]) -> list[str]:
    return _table(OVERHEAD_HEADER, _rows(overhead), _overhead_cells)


def _overhead_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["mode"] + MODE_NOTES.get(row["mode"], ""),
        f"{row['model_seconds']:.0f} s ±{row['model_time_spread']:.0%}",
        f"{row['overhead_median_s']:.2f} s",
        f"{row['overhead_p95_s']:.2f} s",
        f"{row['transitions_per_job']:.1f}",
        f"{row['status_requests_per_job']:.1f}" if "status_requests_per_job" in row else "n/a",
        f"${row['cost_per_1000_images_usd']:.3f}",
    ]


def functions_table(overhead: dict[str, Any]) -> list[str]:
    header = "function | memory | poll 5 s: duration | poll 30 s: duration | GB-s / job (5 s, 30 s)"
    rows = _rows(overhead)
    five = _find(rows, "poll, adaptive", 5.0) or {}
    thirty = _find(rows, "poll, adaptive", 30.0) or five
    five_f = five.get("cost_breakdown_per_1000", {}).get("functions", {})
    thirty_f = thirty.get("cost_breakdown_per_1000", {}).get("functions", {})

    def cells(name: str) -> list[str]:
        a, b = five_f.get(name, {}), thirty_f.get(name, {})
        return [
            name.removesuffix("Function"),
            f"{a.get('memory_mb') or b.get('memory_mb')} MB",
            f"{a.get('mean_duration_s', 0):.3f} s",
            f"{b.get('mean_duration_s', 0):.3f} s",
            f"{a.get('gb_seconds_per_job', 0):.3f}, {b.get('gb_seconds_per_job', 0):.3f}",
        ]

    return _table(header, sorted(set(five_f) | set(thirty_f)), cells)


def overhead_goals(overhead: dict[str, Any]) -> list[str]:
    rows = _rows(overhead)
    polls = [row for row in (_find(rows, "poll, adaptive", s) for s in (5.0, 30.0)) if row]
    hooks = [row for row in (_find(rows, "webhook", s) for s in (5.0, 30.0)) if row]
    return [*_poll_goals(polls), *_webhook_goals(hooks)]


def _poll_goals(polls: list[dict[str, Any]]) -> list[str]:
    if not polls:
        return []
    worst = max(row["overhead_median_s"] for row in polls)
    figures = " / ".join(f"{row['overhead_median_s']:.2f} s" for row in polls)
    worst_cost = max(row["cost_per_1000_images_usd"] for row in polls)
    costs = " / ".join(f"${row['cost_per_1000_images_usd']:.3f}" for row in polls)
    requests = [row.get("status_requests_per_job", float("nan")) for row in polls]
    return [
        f"- **Poll mode, steady state, overhead median ≤ {POLL_OVERHEAD_GOAL_S} s (5 s / 30 s "
        f"±10%, template defaults):** {figures}. {_verdict(worst <= POLL_OVERHEAD_GOAL_S)}.",
        f"- **Status requests to the queue per job, steady state, with the stream ≤ "
        f"{STATUS_REQUESTS_GOAL}:** "
        + " / ".join(f"{value:.1f}" for value in requests)
        + f". {_verdict(max(requests) <= STATUS_REQUESTS_GOAL)}.",
        f"- **Poll mode ≤ ${POLL_COST_GOAL:.2f} per 1,000 images (steady state):** {costs}. "
        f"{_verdict(worst_cost <= POLL_COST_GOAL)}.",
    ]


def _webhook_goals(hooks: list[dict[str, Any]]) -> list[str]:
    if not hooks:
        return []
    worst = max(row["overhead_median_s"] for row in hooks)
    worst_cost = max(row["cost_per_1000_images_usd"] for row in hooks)
    figures = " / ".join(
        f"{row['overhead_median_s']:.2f} s, ${row['cost_per_1000_images_usd']:.3f}" for row in hooks
    )
    return [
        f"- **Webhook mode ≤ {WEBHOOK_OVERHEAD_GOAL_S} s and ≤ ${WEBHOOK_COST_GOAL:.2f}:** "
        f"{figures}. Overhead {_verdict(worst <= WEBHOOK_OVERHEAD_GOAL_S)}, cost "
        f"{_verdict(worst_cost <= WEBHOOK_COST_GOAL)}."
    ]


def copy_table(copy: dict[str, Any]) -> list[str]:
    header = (
        "output | streamed copy | peak extra RSS | upload of the file alone (ceiling) "
        "| copy / ceiling"
    )
    lines = _table(
        header,
        copy["rows"],
        lambda row: [
            f"{row['size_mb']} MB",
            f"{row['copy_mb_per_s']:.0f} MB/s",
            f"{row['copy_peak_extra_rss_mb']:.1f} MB",
            f"{row['upload_only_mb_per_s']:.0f} MB/s",
            f"{row['ratio_to_upload_only']:.2f}",
        ],
    )
    ratios = [row["ratio_to_upload_only"] for row in copy["rows"]]
    memory = max(row["copy_peak_extra_rss_mb"] for row in copy["rows"])
    lines += [
        "",
        f"- **Streamed copy ≥ {COPY_RATIO_GOAL} of the upload-only ceiling, each size:** "
        + " / ".join(f"{ratio:.2f}" for ratio in ratios)
        + f". {_verdict(min(ratios) >= COPY_RATIO_GOAL)}.",
        f"- **Memory < {COPY_MEMORY_GOAL_MB} MB extra:** {memory:.1f} MB at most. "
        f"{_verdict(memory < COPY_MEMORY_GOAL_MB)}.",
    ]
    return lines


def burst_lines(burst: dict[str, Any]) -> list[str]:
    counts = (
        f"{burst['uploads']} uploads, {burst['executions']} executions, {burst['outputs']} "
        f"outputs, {burst['notifications']} notifications, {burst['duplicates']} duplicates, "
        f"{burst['model_submits']} model submits, {burst['succeeded']} succeeded, "
        f"{burst.get('cancelled', 0)} cancelled"
    )
    ok = (
        burst["uploads"] >= BURST_GOAL
        and burst["executions"] == burst["outputs"] == burst["notifications"] == burst["uploads"]
        and burst["duplicates"] == 0
        and burst["succeeded"] == burst["uploads"]
    )
    return [
        f"- **Burst of {BURST_GOAL} against a concurrency of {burst.get('concurrency', '?')}:** "
        f"{counts}. {_verdict(ok)}.",
        f"- Model runs of {burst.get('model_seconds', 0):.1f} s: the model alone needs "
        f"{burst.get('model_drain_seconds', 0):.0f} s for the burst; it took "
        f"{burst['wall_seconds']:.0f} s from the first upload to the last notification "
        f"(submits at {burst['submit_rate_per_s']:.1f}/s; the longest wait in the queue "
        f"{burst.get('longest_queue_wait_s', 0):.0f} s).",
        f"- Transitions a job: {burst.get('transitions_per_job', 0):.1f} on average; spent "
        f"while queued: {burst.get('queued_transitions_per_job_mean', 0):.1f} on average, "
        f"{burst.get('queued_transitions_per_job_max', 0)} at most. AWS cost "
        f"${burst.get('cost_per_1000_images_usd', 0):.3f} per 1,000 images.",
    ]


def cold_table(cold: dict[str, Any]) -> list[str]:
    lines = _table(
        "function | import | x `import boto3`",
        cold["rows"],
        lambda row: [
            row["function"].removesuffix("Function"),
            f"{row['import_ms']:.0f} ms",
            f"{row['ratio_to_boto3']:.2f}x",
        ],
    )
    worst = max(row["ratio_to_boto3"] for row in cold["rows"])
    best = min(row["ratio_to_boto3"] for row in cold["rows"])
    breakdown = ", ".join(f"{name} ~{ms:.0f} ms" for name, ms in cold["breakdown_ms"].items())
    lines += [
        "",
        f"- **Handler cold import ≤ {COLD_START_GOAL}x `import boto3` "
        f"({cold['boto3_import_ms']:.0f} ms):** {best:.2f} to {worst:.2f}x. "
        f"{_verdict(worst <= COLD_START_GOAL)}. Where it goes (StartEdit, `-X importtime`, "
        f"inclusive and overlapping): {breakdown}.",
    ]
    return lines


def render(latest: dict[str, Any]) -> str:
    first = next(iter(latest.values()))
    machine = first["machine"]
    dates = sorted({result["date"] for result in latest.values()})
    lines = [
        f"Figures from one saved run ({dates[0]} to {dates[-1]}) on {machine['cpus']} CPUs "
        f"({machine['cpu']}), Python {machine['python']}: `benchmarks/results/latest.json`.",
        "",
    ]
    if "first_job" in latest:
        steady = latest.get("overhead", {}).get("rows", [])
        lines += ["**The first job of a fresh stack** (nothing learned of the model yet).", ""]
        lines += [*first_job_lines(latest["first_job"], steady), ""]
    if "overhead" in latest:
        overhead = latest["overhead"]
        lines += ["**Latency and cost per job.**", "", *overhead_table(overhead), ""]
        lines += [*overhead_goals(overhead), ""]
        lines += ["Each function's configured memory and measured duration (poll mode):", ""]
        lines += [*functions_table(overhead), ""]
    if "burst" in latest:
        lines += ["**Burst against the model's concurrency.**", "", *burst_lines(latest["burst"])]
        lines.append("")
    if "output_copy" in latest:
        lines += ["**Output copy.**", "", *copy_table(latest["output_copy"]), ""]
    if "cold_start" in latest:
        lines += ["**Cold start.**", "", *cold_table(latest["cold_start"])]
    return "\n".join(lines).rstrip() + "\n"


def write(readme: Path, text: str) -> None:
    content = readme.read_text(encoding="utf-8")
    if START not in content or END not in content:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    text = render(json.loads(LATEST.read_text(encoding="utf-8")))
    if args.write:
        write(README, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
