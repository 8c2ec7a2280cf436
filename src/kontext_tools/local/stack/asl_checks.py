"""The checks Step Functions makes when it is given a definition, made before moto is.

moto creates any state machine it can parse: one with a state nothing reaches, or a
`Next` that names no state, is accepted here and refused by AWS at deploy time
(`Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: ...'`). So every
definition is checked twice before the local stack creates it:

- by AWS's own validators, where they are installed (`make asl-tools` puts them in
  tools/asl/node_modules): the Amazon States Language service behind the AWS Toolkit and
  `asl-validator`, run by tools/asl/validate.js;
- by `transition_problems`, a walk of the states graph in Python, so the rule holds on a
  machine without node too. Its messages are worded as Step Functions words them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kontext_tools.local.stack.template import TemplateError

ASL_TOOLS = Path(__file__).resolve().parents[4] / "tools" / "asl"
VALIDATOR_TIMEOUT_SECONDS = 60


class DefinitionRefusedError(TemplateError):
    """A state machine definition AWS would refuse; the message is AWS's."""


def render_definition(definition: str, substitutions: Mapping[str, Any]) -> str:
    """The definition as Step Functions receives it: each ${name} replaced by its value."""
    for name, value in substitutions.items():
        definition = definition.replace("${" + name + "}", str(value))
    return definition


def check_definition(name: str, definition: str) -> list[str]:
    """Raise DefinitionRefusedError for a definition Step Functions would refuse. Returns the
    validators that ran (the walk always; AWS's when installed)."""
    problems = transition_problems(json.loads(definition))
    validators = ["reachability walk"]
    aws_problems = aws_validator_problems({name: definition})
    if aws_problems is not None:
        problems += aws_problems[name]
        validators.append("AWS's ASL validators")
    if problems:
        raise DefinitionRefusedError(
            f"Invalid State Machine Definition for {name}: " + "; ".join(problems)
        )
    return validators


def transition_problems(definition: Mapping[str, Any]) -> list[str]:
    """Missing targets and unreachable states, in every scope (the top level and each
    Parallel branch and Map processor, whose states may only reach each other)."""
    problems: list[str] = []
    for scope in _scopes(definition):
        states: Mapping[str, Any] = scope.get("States") or {}
        start = str(scope.get("StartAt"))
        if start not in states:
            problems.append(f'MISSING_TRANSITION_TARGET: Missing "Next" target: {start}')
            continue
        reached = {start}
        waiting = [start]
        while waiting:
            for target in _targets(states[waiting.pop()]):
                if target not in states:
                    problems.append(f'MISSING_TRANSITION_TARGET: Missing "Next" target: {target}')
                elif target not in reached:
                    reached.add(target)
                    waiting.append(target)
        problems += [
            f'MISSING_TRANSITION_TARGET: State "{state}" is not reachable'
            for state in states
            if state not in reached
        ]
    return problems


def _scopes(scope: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield scope
    for state in (scope.get("States") or {}).values():
        for branch in state.get("Branches") or []:
            yield from _scopes(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _scopes(processor)


def _targets(state: Mapping[str, Any]) -> Iterator[str]:
    for holder in (state, *(state.get("Choices") or []), *(state.get("Catch") or [])):
        if "Next" in holder:
            yield holder["Next"]
    if "Default" in state:
        yield state["Default"]


def aws_validator_problems(definitions: Mapping[str, str]) -> dict[str, list[str]] | None:
    """What AWS's validators say of each definition, or None where they are not installed."""
    node = shutil.which("node")
    if node is None or not (ASL_TOOLS / "node_modules").is_dir():
        return None
    answer = subprocess.run(  # noqa: S603 - node and our own script, no shell
        [node, str(ASL_TOOLS / "validate.js")],
        input=json.dumps(dict(definitions)),
        capture_output=True,
        text=True,
        timeout=VALIDATOR_TIMEOUT_SECONDS,
        check=False,
    )
    if answer.returncode != 0:
        raise TemplateError(f"the ASL validators failed: {answer.stderr.strip()[-500:]}")
    problems: dict[str, list[str]] = json.loads(answer.stdout)
    return problems
