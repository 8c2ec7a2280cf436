"""Docs stay true: the README's options, the settings model and the template agree."""

from __future__ import annotations

import re

from kontext_pipeline.config import PipelineSettings

from kontext_tools.local.stack import load_template
from kontext_tools.settings_doc import with_reference
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
TEMPLATE = load_template(ROOT / "template.yaml")
SETTINGS = {name.upper() for name in PipelineSettings.model_fields}


def test_the_configuration_reference_is_generated_from_the_settings_model() -> None:
    assert with_reference(README) == README, "run python -m kontext_tools.settings_doc --write"


def test_every_variable_the_readme_names_is_a_setting() -> None:
    # Given every `UPPER_SNAKE` name in backticks that is not an AWS or Powertools name
    named = set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`", README))
    named = {name for name in named if not name.startswith(("POWERTOOLS_", "AWS_"))}
    # Then each is a field of the settings model
    assert named - SETTINGS == set()


def test_every_setting_is_in_the_readme() -> None:
    assert {name for name in SETTINGS if f"`{name}`" not in README} == set()


def test_every_template_parameter_is_documented_and_every_documented_one_exists() -> None:
    parameters = set(TEMPLATE["Parameters"])
    section = README[README.index("## Configuration") : README.index("### Configuration reference")]
    documented = set(re.findall(r"`([A-Z][a-zA-Z]+)`", section))
    assert documented == parameters


def test_the_template_sets_only_variables_the_settings_model_reads() -> None:
    variables = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    for resource in TEMPLATE["Resources"].values():
        variables |= set(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    assert {name for name in variables if not name.startswith("POWERTOOLS_")} <= SETTINGS
