"""IAM in the local run: each function calls AWS as its own role, and moto refuses what
the role's policies do not allow, as AWS would."""

from __future__ import annotations

import re
from pathlib import Path

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.build import BuildArtifacts, ensure_built
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

FAST_MODEL = EmulatorTiming(queue_seconds=0.1, run_seconds=0.3)


def build_without_grant(tmp_path: Path, function: str, action: str) -> BuildArtifacts:
    """The build, with `action` taken out of `function`'s policies in a copy of its
    template (the built code is linked, not copied)."""
    built = ensure_built()
    copy = tmp_path / "build"
    copy.mkdir()
    for entry in built.build_dir.iterdir():
        if entry.name != "template.yaml":
            (copy / entry.name).symlink_to(entry)
    template = built.template.read_text(encoding="utf-8")
    start = template.index(f"\n  {function}:\n")
    end = re.compile(r"\n  [A-Za-z0-9]+:\n").search(template, start + 1)
    block = template[start : end.start() if end else len(template)]
    trimmed = re.sub(rf"\n\s*- {re.escape(action)}\n", "\n", block)
    assert trimmed != block, f"{function} had no {action} grant to take out"
    # Paths out of the build folder (the state machines' definitions) stay where they are.
    template = re.sub(
        r"(DefinitionUri: )(\.\./\S+)",
        lambda uri: uri.group(1) + str((built.build_dir / uri.group(2)).resolve()),
        template.replace(block, trimmed),
    )
    (copy / "template.yaml").write_text(template, encoding="utf-8")
    return BuildArtifacts(copy, built.runtime_sdk_dir, built.python)


def test_a_grant_the_code_needs_but_the_template_lacks_fails_the_job_with_access_denied(
    tmp_path: Path,
) -> None:
    # Given a deployment whose CollectOutputs may no longer write objects
    log = tmp_path / "local.log"
    build = build_without_grant(tmp_path, "CollectOutputsFunction", "s3:PutObject")
    with LocalPipeline(build=build, emulator_timing=FAST_MODEL, log_file=log) as pipeline:
        # When an upload is edited and its outputs are stored
        source = pipeline.upload(make_image(), key="inputs/denied.png", prompt="x")
        notification = pipeline.wait_for_notification(source, timeout=120).notification
    # Then the job fails for access denied, as on Lambda, and the log names the refusal
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == "access_denied"
    refusals = [line for line in log.read_text().splitlines() if "IAM refused" in line]
    assert any("PutObject" in line and "AccessDenied" in line for line in refusals), refusals


def test_the_untouched_template_grants_every_call_of_a_job() -> None:
    # Given the template as it is, with IAM enforced
    with LocalPipeline(emulator_timing=FAST_MODEL) as pipeline:
        # When an upload is edited
        source = pipeline.upload(make_image(), key="inputs/granted.png", prompt="x")
        notification = pipeline.wait_for_notification(source, timeout=120).notification
    # Then it succeeds: no call of the job was refused
    assert notification.status == "SUCCEEDED"
