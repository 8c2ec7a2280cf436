"""What CloudFormation checks before it creates anything: parameter constraints and Rules.

A deploy with `DeadlineSeconds=2.5` or overlapping prefixes fails on AWS before a single
resource exists; the local stack refuses the same values the same way, so a local run
never accepts a configuration AWS would not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

from kontext_pipeline.errors import ConfigurationError

from kontext_tools.errors import ToolReason


class ParameterRefusedError(ConfigurationError):
    """A parameter value CloudFormation would refuse (constraint or Rule)."""

    default_reason: ClassVar[StrEnum] = ToolReason.INVALID_PARAMETER


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Every parameter's value: the one given, else its default."""
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        if name in given:
            values[name] = str(given[name])
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise ParameterRefusedError(f"parameter {name} has no default and no value was given")
    return values


def check_parameters(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Refuse values that break a parameter's constraints or a Rule's assertion; returns
    every parameter's value, as the stack will use it."""
    values = parameter_values(template, given)
    for name, spec in template.get("Parameters", {}).items():
        _check_constraints(name, spec, values[name])
    for rule_name, rule in template.get("Rules", {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not _evaluate(condition, values):
            continue
        for assertion in rule.get("Assertions", []):
            if not _evaluate(assertion["Assert"], values):
                description = str(assertion.get("AssertDescription", "")).strip()
                raise ParameterRefusedError(f"rule {rule_name} failed: {description}")
    return values


def _check_constraints(name: str, spec: Mapping[str, Any], value: str) -> None:
    def refuse(why: str) -> ParameterRefusedError:
        hint = spec.get("ConstraintDescription")
        return ParameterRefusedError(
            f"parameter {name}={value!r} {why}" + (f" ({hint})" if hint else "")
        )

    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        raise refuse(f"is not one of {spec['AllowedValues']}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not any(re.fullmatch(str(pattern), v) for v in _as_deployed(value)):
        raise refuse(f"does not match {pattern}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise refuse(f"is shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise refuse(f"is longer than {spec['MaxLength']}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise refuse("is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise refuse(f"is less than {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise refuse(f"is more than {spec['MaxValue']}")


def _as_deployed(value: str) -> tuple[str, ...]:
    # The one deviation a local run makes: the model emulator speaks plain HTTP on loopback,
    # where AWS would be given an https:// URL.
    if re.match(r"http://(127\.0\.0\.1|localhost)(:[0-9]+)?(/|$)", value):
        return (value, "https://" + value.removeprefix("http://"))
    return (value,)


def _evaluate(expression: Any, values: Mapping[str, str]) -> Any:  # noqa: PLR0911 - one per function
    """The rule-specific intrinsic functions (the only ones Rules may use)."""
    if isinstance(expression, list):
        return [_evaluate(item, values) for item in expression]
    if not isinstance(expression, dict) or len(expression) != 1:
        return expression
    ((name, argument),) = expression.items()
    if name == "Ref":
        if str(argument) not in values:
            raise ParameterRefusedError(f"Rules refer to {argument}, which has no value")
        return values[str(argument)]
    arguments = _evaluate(argument, values)
    if name == "Fn::Equals":
        left, right = arguments
        return str(left) == str(right)
    if name == "Fn::Not":
        return not arguments[0]
    if name == "Fn::And":
        return all(arguments)
    if name == "Fn::Or":
        return any(arguments)
    if name == "Fn::Contains":
        items, value = arguments
        return str(value) in [str(item) for item in items]
    if name == "Fn::EachMemberEquals":
        items, value = arguments
        return all(str(item) == str(value) for item in items)
    if name == "Fn::EachMemberIn":
        items, allowed = arguments
        return all(str(item) in [str(a) for a in allowed] for item in items)
    raise ParameterRefusedError(
        f"{name} cannot be used in Rules", reason=ToolReason.INVALID_TEMPLATE
    )
