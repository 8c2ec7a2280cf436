"""The edit state machine's shape: what a job pays for in state transitions."""

from __future__ import annotations

import json
from typing import Any

from kontext_tools.local.stack import load_template
from tests.conftest import ROOT

ASL = json.loads((ROOT / "statemachine" / "edit_pipeline.asl.json").read_text(encoding="utf-8"))
TEMPLATE = load_template(ROOT / "template.yaml")


def substitutions() -> dict[str, Any]:
    machine = TEMPLATE["Resources"]["EditStateMachine"]["Properties"]
    return dict(machine["DefinitionSubstitutions"])


def test_the_state_after_submit_is_chosen_at_deploy_time_and_exists_in_both_modes() -> None:
    # Given the ASL and the template's substitution for the state after SubmitEdit
    after_submit = substitutions()["AfterSubmitState"]
    # When CompletionMode is webhook or poll (the IsWebhookMode condition)
    condition, webhook_state, poll_state = after_submit["Fn::If"]
    # Then SubmitEdit goes straight to AwaitWebhook or WaitForModel, no Choice in between
    assert condition == "IsWebhookMode"
    assert ASL["States"]["SubmitEdit"]["Next"] == "${AfterSubmitState}"
    assert (webhook_state, poll_state) == ("AwaitWebhook", "WaitForModel")
    assert ASL["States"][webhook_state]["Type"] == "Task"
    assert ASL["States"][poll_state]["Type"] == "Wait"
    assert "ChooseCompletion" not in ASL["States"]


def test_every_substitution_the_asl_names_is_defined() -> None:
    # Given the ASL's ${...} placeholders
    text = json.dumps(ASL)
    # When they are collected
    names = {part.split("}", 1)[0] for part in text.split("${")[1:]}
    # Then the template defines each of them
    assert names <= set(substitutions())
