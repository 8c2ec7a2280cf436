"""The local run executes what `sam build` made, as Lambda would, and fails as Lambda would
when the build is wrong."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kontext_tools.local.build import RUNTIME_FLAGS, BuildArtifacts, ensure_built
from kontext_tools.local.moto_fixes import USER_METADATA_LIMIT_BYTES
from kontext_tools.local.pipeline import LocalPipeline
from kontext_tools.local.sandbox import FunctionInitError
from kontext_tools.local.stack import load_template
from tests.conftest import ROOT, make_image


@pytest.fixture(scope="module")
def artifacts() -> BuildArtifacts:
    return ensure_built()


def _functions(artifacts: BuildArtifacts) -> list[Path]:
    return sorted(
        folder
        for folder in artifacts.build_dir.iterdir()
        if folder.is_dir() and (folder / "app.py").is_file()
    )


def _in_a_fresh_runtime(
    artifacts: BuildArtifacts, folder: Path, code: str
) -> subprocess.CompletedProcess[str]:
    """`code` run in a bare interpreter of the runtime's version that writes no bytecode,
    as Lambda starts one; PATH in it is the import path Lambda gives the function."""
    path = artifacts.import_path(folder)
    return subprocess.run(
        [str(artifacts.python), *RUNTIME_FLAGS, "-c", code.replace("PATH", repr(path))],
        cwd=folder,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_handler_imports_with_only_its_folder_the_layer_and_boto3(
    artifacts: BuildArtifacts,
) -> None:
    # Given a bare interpreter of the runtime's version (no site-packages at all)
    functions = _functions(artifacts)
    template = load_template(ROOT / "template.yaml")
    declared = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]
    assert len(functions) == len(declared) > 0
    for folder in functions:
        # When the handler module is imported the way Lambda imports it
        completed = _in_a_fresh_runtime(
            artifacts,
            folder,
            "import sys; sys.path[:0] = PATH; import app; "
            "assert callable(app.lambda_handler); print(sys.version_info[:2])",
        )
        # Then it imports, in Python 3.12
        assert completed.returncode == 0, f"{folder.name}: {completed.stderr}"
        assert completed.stdout.strip() == "(3, 12)"


# Imports a handler the way Lambda does, and prints every module Python had to compile
# from source on the way (importlib calls source_to_code when no usable bytecode is found).
COUNT_COMPILES = """
import sys
from importlib import _bootstrap_external as external
compiled = []
original = external.SourceLoader.source_to_code
def counted(self, data, path, **options):
    compiled.append(path)
    return original(self, data, path, **options)
external.SourceLoader.source_to_code = counted
sys.path[:0] = PATH
import app
print([path for path in compiled if path.startswith(BUILD)])
"""


def test_a_cold_start_compiles_nothing_the_build_ships(artifacts: BuildArtifacts) -> None:
    # Given the built functions and layer (read-only on Lambda, so a module without its
    # bytecode would be compiled at every cold start)
    for folder in _functions(artifacts):
        # When a fresh interpreter that writes no bytecode imports the handler
        code = COUNT_COMPILES.replace("BUILD", repr(str(artifacts.build_dir)))
        completed = _in_a_fresh_runtime(artifacts, folder, code)
        # Then every module of the build it imports comes from the bytecode the build shipped
        assert completed.returncode == 0, f"{folder.name}: {completed.stderr}"
        assert completed.stdout.strip() == "[]", folder.name


def test_a_layer_missing_a_dependency_fails_the_local_run_with_the_import_error(
    artifacts: BuildArtifacts, tmp_path: Path
) -> None:
    # Given a copy of the build whose layer lost pydantic
    broken = tmp_path / "build"
    shutil.copytree(artifacts.build_dir, broken, symlinks=True)
    layer = broken / "CommonLayer" / "python"
    for item in layer.iterdir():
        if item.name == "pydantic" or item.name.startswith("pydantic-"):
            shutil.rmtree(item)
    # (the built template names the state machine's file relative to where sam built it)
    template = broken / "template.yaml"
    definition = (artifacts.build_dir.parent.parent / "statemachine").resolve()
    template.write_text(
        re.sub(
            r"DefinitionUri: \S*statemachine", f"DefinitionUri: {definition}", template.read_text()
        ),
        encoding="utf-8",
    )
    broken_artifacts = BuildArtifacts(broken, artifacts.runtime_sdk_dir, artifacts.python)
    # When the local run stands up on it
    with pytest.raises(FunctionInitError) as failure:
        LocalPipeline(build=broken_artifacts).__enter__()
    # Then it stops at once, with Lambda's error for the handler that cannot be imported
    assert failure.value.error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'pydantic'" in failure.value.error["errorMessage"]


def test_each_invocation_runs_in_a_warm_sandbox_after_one_cold_start(
    pipeline: LocalPipeline,
) -> None:
    # Given the running pipeline (one sandbox per function started with it)
    assert pipeline.lambdas is not None
    before = len(pipeline.lambdas.invocations)
    # When a job runs through every step
    source = pipeline.upload(make_image(), key="inputs/warm.png", prompt="make it warm")
    notification = pipeline.wait_for_notification(source, timeout=60).notification
    # Then it succeeds on sandboxes that were already warm
    assert notification.status == "SUCCEEDED"
    invocations = pipeline.lambdas.invocations[before:]
    assert invocations
    assert not [i.function_name for i in invocations if i.cold_start]


def test_an_event_still_waiting_when_the_local_run_stops_is_dropped_with_it() -> None:
    # Given a local run, and an upload whose S3 event is still on Lambda's asynchronous hop
    with LocalPipeline() as pipeline:
        lambdas = pipeline.lambdas
        assert lambdas is not None
        before = len(lambdas.invocations)
        pipeline.upload(make_image(), key="inputs/late.png", prompt="make it late")
    # When the run has stopped and the hop is over
    assert lambdas.drain(timeout=10) == []
    # Then no function ran for it: nothing starts a sandbox for a stack that is gone
    # (whose roles may already be deleted, which failed the event's thread)
    assert lambdas.invocations[before:] == []


def test_user_metadata_over_two_kilobytes_is_refused_as_s3_refuses_it(
    pipeline: LocalPipeline,
) -> None:
    # Given metadata one byte over S3's 2 KB limit (name "prompt" counts too)
    prompt = "x" * (USER_METADATA_LIMIT_BYTES - len("prompt") + 1)
    # When it is uploaded
    with pytest.raises(ClientError) as refused:
        pipeline.clients.s3.put_object(
            Bucket=pipeline.bucket,
            Key="inputs/too-much-metadata.png",
            Body=make_image(),
            Metadata={"prompt": prompt},
        )
    # Then S3's own error comes back, and one byte less is accepted
    assert refused.value.response["Error"]["Code"] == "MetadataTooLarge"
    pipeline.clients.s3.put_object(
        Bucket=pipeline.bucket,
        Key="other/just-fits.png",
        Body=make_image(),
        Metadata={"prompt": prompt[:-1]},
    )
