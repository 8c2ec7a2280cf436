"""Backfill through the local run: a Distributed Map over a prefix, one edit per object
version, submitted once whether the trigger ran it or another backfill did."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kontext_pipeline.storage.scope import EditScope

from kontext_tools.backfill import dry_run
from kontext_tools.cli import main
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import local_run, make_image
from tests.integration.conftest import FAST_MODEL

OBJECTS = 50


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(emulator_timing=FAST_MODEL) as running:
        yield running


def put_without_trigger(pipeline: LocalPipeline, keys: list[str], body: bytes) -> None:
    """Objects that were in the bucket before the pipeline: no S3 event reaches the trigger."""
    pipeline.put_existing(dict.fromkeys(keys, body), metadata={"prompt": "make it autumn"})


def wait_for_notifications(pipeline: LocalPipeline, prefix: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = [
            item.notification
            for item in pipeline.notifications()
            if item.notification.source.key.startswith(prefix)
        ]
        if len(found) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{len(found)} of {count} notifications under {prefix}")


def test_a_backfill_edits_each_object_once_however_often_it_runs(pipeline: LocalPipeline) -> None:
    # Given 50 images already in the bucket (no trigger ran), a sidecar beside them, and one
    # image the trigger has already edited
    prefix = "inputs/archive/"
    keys = [f"{prefix}{index:02d}.png" for index in range(OBJECTS)]
    put_without_trigger(pipeline, keys, make_image())
    put_without_trigger(pipeline, [f"{prefix}00.png.prompt.txt"], b"a sidecar")
    edited = pipeline.upload(make_image(), key=f"{prefix}edited.png", prompt="make it winter")
    assert pipeline.wait_for_notification(edited).notification.status == "SUCCEEDED"
    submits_before = pipeline.emulator.submit_count
    executions_before = len(pipeline.executions())

    # When the dry run looks first, then a backfill runs with MaxConcurrency 5
    scope = EditScope(pipeline.outputs["InputPrefix"], pipeline.outputs["OutputPrefix"])
    plan = dry_run(pipeline.clients.s3, bucket=pipeline.bucket, prefix=prefix, scope=scope)
    first = pipeline.backfill(prefix, max_concurrency=5, timeout=240)

    # Then the dry run counted without starting anything, and the backfill started the 50,
    # recognised the trigger's job and skipped the sidecar
    assert (plan.objects, plan.skipped, plan.model_cost_usd) == (OBJECTS + 1, 1, 4.08)
    assert first.status == "SUCCEEDED", first.error
    assert first.counts == {"started": OBJECTS, "duplicate": 1, "skipped": 1, "failed": 0}
    # And the run's output carries no result per object (they went to S3 through the
    # ResultWriter), so no listing is too big for the 256 KiB a state may pass on
    output = pipeline.clients.stepfunctions.describe_execution(executionArn=first.execution_arn)[
        "output"
    ]
    written = json.loads(output)["map_run"]["ResultWriterDetails"]
    assert written["Key"].startswith("backfill-results/")
    assert len(output) < 2048
    # And each of the 50 was edited and announced once, by one model request each
    notifications = wait_for_notifications(pipeline, prefix, OBJECTS + 1)
    assert sorted(n.source.key for n in notifications) == sorted([*keys, edited.key])
    assert {n.status for n in notifications} == {"SUCCEEDED"}
    assert pipeline.emulator.submit_count == submits_before + OBJECTS
    assert len(pipeline.executions()) == executions_before + OBJECTS

    # When the same backfill runs again, with a prompt of its own
    again = pipeline.backfill(prefix, prompt="make it spring", max_concurrency=5, timeout=240)

    # Then every object is a duplicate: no new job, no second submit
    assert again.counts == {"started": 0, "duplicate": OBJECTS + 1, "skipped": 1, "failed": 0}
    assert pipeline.emulator.submit_count == submits_before + OBJECTS
    assert len(pipeline.executions()) == executions_before + OBJECTS


def test_a_backfill_with_its_own_prompt_and_options_overrides_the_metadata(
    pipeline: LocalPipeline,
) -> None:
    # Given two images already in the bucket, with a prompt in their metadata
    prefix = "inputs/request/"
    keys = [f"{prefix}a.png", f"{prefix}b.png"]
    put_without_trigger(pipeline, keys, make_image())
    # When a backfill asks for its own prompt and two PNG outputs each
    result = pipeline.backfill(
        prefix, prompt="paint it blue", options={"num_images": 2, "output_format": "png"}
    )
    # Then both jobs ran with that request
    assert result.counts["started"] == 2
    notifications = wait_for_notifications(pipeline, prefix, 2)
    for notification in notifications:
        assert notification.prompt == "paint it blue"
        assert [output.content_type for output in notification.outputs] == ["image/png"] * 2


def test_the_backfill_skips_what_the_trigger_skips(pipeline: LocalPipeline) -> None:
    # Given a prefix outside the input prefix (the outputs)
    # When it is backfilled
    result = pipeline.backfill(pipeline.outputs["OutputPrefix"])
    # Then nothing is started (or the listing is empty)
    assert result.status == "SUCCEEDED", result.error
    assert result.counts["started"] == 0


def test_the_command_line_counts_a_dry_run_and_a_backfill(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the 50 archived images, all edited by now
    stack = pipeline.stack.name  # type: ignore[union-attr]
    submits = pipeline.emulator.submit_count
    # When the command line plans a backfill of them with two images each
    code = main(
        [
            "backfill",
            "--stack",
            stack,
            "--prefix",
            "inputs/archive/",
            "--num-images",
            "2",
            "--dry-run",
            "--json",
        ]
    )
    planned = json.loads(capsys.readouterr().out)
    # Then it counts them and the model's price without starting anything
    assert code == 0
    assert planned["objects"] == OBJECTS + 1
    assert planned["images"] == 2 * (OBJECTS + 1)
    assert planned["model_cost_usd"] == round(2 * (OBJECTS + 1) * 0.08, 2)
    # When it runs the backfill for real
    code = main(["backfill", "--stack", stack, "--prefix", "inputs/archive/", "--json"])
    done = json.loads(capsys.readouterr().out)
    # Then it follows it to the end: every object already had its job
    assert code == 0
    assert (done["status"], done["started"], done["duplicate"]) == ("SUCCEEDED", 0, OBJECTS + 1)
    assert pipeline.emulator.submit_count == submits


def test_the_command_line_refuses_a_prefix_outside_the_inputs(
    pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the deployed stack and a prefix outside its inputs
    stack = pipeline.stack.name  # type: ignore[union-attr]
    # When the command is asked to backfill it
    code = main(["backfill", "--stack", stack, "--prefix", "outputs/"])
    # Then it refuses before starting anything, and says why
    assert code == 2
    assert "outside the input prefix" in capsys.readouterr().err


def test_kontext_pipeline_local_backfills_a_folder_put_in_the_bucket_beforehand(
    tmp_path: Path,
) -> None:
    # Given a folder of three images
    folder = tmp_path / "archive"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (folder / name).write_bytes(make_image(size=(96, 64)))
    out = tmp_path / "out"
    # When `kontext-pipeline local --backfill` puts them in the bucket (no upload event)
    # and backfills them, two at once
    backfill = ("--backfill", "--max-concurrency", "2", "--prompt", "make it autumn")
    result, summary = local_run("--image", str(folder), *backfill, out=out, model_seconds=0.3)
    # Then the backfill started the three, each was edited, and the summary says so
    assert "Backfill: 3 started, 0 duplicate, 0 skipped, 0 failed" in result.stderr
    assert (summary["images"], summary["succeeded"], summary["failed"]) == (3, 3, 0)
    for name in ("a", "b", "c"):
        assert (out / name / "manifest.json").is_file()
