"""make build and make deploy agree on what they build and what they deploy."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT


def planned_commands(*make_arguments: str) -> str:
    """What `make deploy` would run (make -n: printed, nothing run)."""
    planned = subprocess.run(
        ["make", "-n", "deploy", *make_arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return planned.stdout


@pytest.mark.parametrize(
    ("arguments", "architecture"), [((), "arm64"), (("ARCHITECTURE=x86_64",), "x86_64")]
)
def test_the_build_and_the_deploy_take_the_same_architecture(
    arguments: tuple[str, ...], architecture: str
) -> None:
    # Given make deploy, with the default architecture or another one
    commands = planned_commands(*arguments)
    # When the sam build and the sam deploy it would run are read
    built = re.findall(r"kontext_tools\.local\.build --release --architecture (\S+)", commands)
    deployed = re.findall(r"sam deploy .*--parameter-overrides Architecture=(\S+)", commands)
    # Then the binaries are built for the architecture the functions are given
    assert built == [architecture]
    assert deployed == [architecture]


def test_more_parameters_go_to_the_deploy_beside_the_architecture() -> None:
    # Given a template parameter for make deploy
    commands = planned_commands("PARAMETERS=CompletionMode=webhook")
    # Then sam deploy gets it beside the architecture
    assert "--parameter-overrides Architecture=arm64 CompletionMode=webhook" in commands
