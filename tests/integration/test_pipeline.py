"""End to end: S3 upload -> trigger -> state machine -> model emulator -> outputs + SNS."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import ROOT, load_event, make_image

SAMPLE = ROOT / "samples" / "kitchen-table.jpg"


def read_object(pipeline: LocalPipeline, uri: str) -> tuple[bytes, dict[str, Any]]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    response = pipeline.clients.s3.get_object(Bucket=bucket, Key=key)
    return response["Body"].read(), response


def test_an_upload_is_edited_and_announced(pipeline: LocalPipeline) -> None:
    # Given the sample image uploaded with a prompt
    source = pipeline.upload(SAMPLE, prompt="Put a donut next to the flour.")
    # When the pipeline runs
    received = pipeline.wait_for_notification(source)
    # Then one JPEG output stands under the outputs prefix, traceable to the input
    notification = received.notification
    assert notification.status == "SUCCEEDED", notification.failure
    assert len(notification.outputs) == 1
    output = notification.outputs[0]
    assert output.key.startswith("outputs/kitchen-table/")
    body, response = read_object(pipeline, output.s3_uri)
    assert response["ContentType"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).format == "JPEG"
    assert response["Metadata"]["source-key"] == "inputs/kitchen-table.jpg"
    assert response["Metadata"]["request-id"] == notification.request_id
    # And the manifest lists it, and the message attributes allow filtering on status
    manifest = json.loads(read_object(pipeline, notification.manifest_uri or "")[0])
    assert manifest["outputs"][0]["sha256"] == output.sha256
    assert received.envelope["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"


def test_four_png_outputs_in_the_asked_aspect_ratio(pipeline: LocalPipeline) -> None:
    # Given an upload asking for 4 PNGs in 16:9
    source = pipeline.upload(
        make_image(size=(300, 300)),
        key="inputs/square.png",
        prompt="make it blue",
        options={"num_images": 4, "output_format": "png", "aspect_ratio": "16:9", "seed": 11},
    )
    # When the pipeline runs
    notification = pipeline.wait_for_notification(source).notification
    # Then four distinct 16:9 PNGs land, and the seed is reported
    assert notification.status == "SUCCEEDED", notification.failure
    assert len(notification.outputs) == 4
    assert len({output.sha256 for output in notification.outputs}) == 4
    for output in notification.outputs:
        image = Image.open(io.BytesIO(read_object(pipeline, output.s3_uri)[0]))
        assert image.format == "PNG"
        assert abs(image.width / image.height - 16 / 9) < 0.02
    assert notification.seed == 11


def test_a_unicode_key_and_prompt_go_through(pipeline: LocalPipeline) -> None:
    # Given a key and a prompt outside ASCII (spaces, accents, an emoji)
    source = pipeline.upload(
        make_image(),
        key="inputs/holiday photos/café à l'aube ☕.png",
        prompt="Ajoute un croissant à côté du café ☕",
    )
    # When the job runs
    notification = pipeline.wait_for_notification(source).notification
    # Then it succeeds, with the prompt intact and the outputs under the same name
    assert notification.status == "SUCCEEDED", notification.failure
    assert notification.prompt == "Ajoute un croissant à côté du café ☕"
    assert notification.outputs[0].key.startswith("outputs/holiday photos/café à l'aube ☕/")


def test_a_model_side_failure_is_announced(pipeline: LocalPipeline) -> None:
    # Given an upload the model will fail on
    source = pipeline.upload(
        make_image(), key="inputs/crash.png", prompt="make it red [fault:model-error]"
    )
    # When the pipeline runs / Then a failure notification names the model's error
    notification = pipeline.wait_for_notification(source).notification
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.error == "ModelRequestFailedError"
    assert notification.request_id


@pytest.mark.parametrize(
    ("key", "body", "metadata", "reason"),
    [
        ("inputs/no-prompt.png", None, {"num-images": "2"}, "missing_prompt"),
        ("inputs/too-many.png", None, {"prompt": "x", "num-images": "9"}, "invalid_option"),
        ("inputs/bad-ratio.png", None, {"prompt": "x", "aspect-ratio": "5:4"}, "invalid_option"),
        ("inputs/notes.png", b"just some text, not an image", {"prompt": "x"}, "not_an_image"),
        ("inputs/empty.png", b"", {"prompt": "x"}, "empty_object"),
    ],
)
def test_bad_input_is_announced_and_never_sent_to_the_model(
    pipeline: LocalPipeline, key: str, body: bytes | None, metadata: dict[str, str], reason: str
) -> None:
    # Given an upload that cannot become a valid model request
    submits_before = pipeline.emulator.submit_count
    source = pipeline.upload(make_image() if body is None else body, key=key, metadata=metadata)
    # When the pipeline runs
    notification = pipeline.wait_for_notification(source).notification
    # Then the failure notification says why, and the model was never called
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == reason
    assert notification.request_id is None
    assert pipeline.emulator.submit_count == submits_before


def test_a_replayed_event_makes_no_second_job(pipeline: LocalPipeline) -> None:
    # Given a finished job
    source = pipeline.upload(make_image(), key="inputs/replay.png", prompt="make it green")
    assert pipeline.wait_for_notification(source).notification.status == "SUCCEEDED"
    submits = pipeline.emulator.submit_count
    execution = pipeline.execution_for(source)
    assert execution is not None
    # When S3 delivers the same event again (at-least-once delivery)
    started = json.loads(execution["input"])["source"]
    event = load_event("s3_put")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = source.bucket
    record["s3"]["object"].update(
        key="inputs/replay.png",
        versionId=started["version_id"],
        sequencer=started["sequencer"],
        eTag=started["etag"],
    )
    answer = pipeline.clients.lambda_.invoke(
        FunctionName=pipeline.stack.physical_ids["StartEditFunction"],  # type: ignore[union-attr]
        Payload=json.dumps(event).encode(),
    )
    # Then it is recognised as a duplicate: no execution, no submit, no notification
    assert json.loads(answer["Payload"].read())["jobs"][0]["outcome"] == "duplicate"
    assert pipeline.emulator.submit_count == submits
    sources = [n.notification.source.key for n in pipeline.notifications()]
    assert sources.count("inputs/replay.png") == 1


def test_outputs_never_trigger_the_pipeline(pipeline: LocalPipeline) -> None:
    # Given the executions so far
    executions_before = len(pipeline.executions())
    # When objects land under the output prefix and outside the input prefix
    pipeline.upload(make_image(), key="outputs/loop.png", prompt="would loop")
    pipeline.upload(Path(SAMPLE).read_bytes(), key="elsewhere/x.jpg", prompt="not watched")
    pipeline.lambdas.drain()  # type: ignore[union-attr]
    # Then no job starts for either
    assert len(pipeline.executions()) == executions_before
