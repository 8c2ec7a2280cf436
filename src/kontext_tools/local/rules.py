"""What CloudFormation checks before it creates anything: parameter constraints and Rules.

A deploy with `DeadlineSeconds=2.5` or overlapping prefixes fails on AWS before a single
resource exists; the local stack refuses the same values the same way, so a local run
never accepts a configuration AWS would not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, ClassVar

from kontext_pipeline.core.errors import ConfigurationError

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
    why = _text_constraint_broken(spec, value)
    if why is None and spec.get("Type") == "Number":
        why = _number_constraint_broken(spec, value)
    if why is not None:
        hint = spec.get("ConstraintDescription")
        raise ParameterRefusedError(
            f"parameter {name}={value!r} {why}" + (f" ({hint})" if hint else "")
        )


def _text_constraint_broken(spec: Mapping[str, Any], value: str) -> str | None:
    """Why the value breaks AllowedValues, AllowedPattern or a length; None if it does not."""
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"is not one of {spec['AllowedValues']}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not any(re.fullmatch(str(pattern), v) for v in _as_deployed(value)):
        return f"does not match {pattern}"
    return _length_constraint_broken(spec, value)


def _length_constraint_broken(spec: Mapping[str, Any], value: str) -> str | None:
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"is shorter than {spec['MinLength']}"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"is longer than {spec['MaxLength']}"
    return None


def _number_constraint_broken(spec: Mapping[str, Any], value: str) -> str | None:
    """Why a Number parameter's value is refused; None if it is not."""
    try:
        number = float(value)
    except ValueError:
        return "is not a number"
    if "MinValue" in spec and number < float(spec["MinValue"]):
        return f"is less than {spec['MinValue']}"
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        return f"is more than {spec['MaxValue']}"
    return None


def _as_deployed(value: str) -> tuple[str, ...]:
    # The one deviation a local run makes: the model emulator speaks plain HTTP on loopback,
    # where AWS would be given an https:// URL.
    if re.match(r"http://(127\.0\.0\.1|localhost)(:[0-9]+)?(/|$)", value):
        return (value, "https://" + value.removeprefix("http://"))
    return (value,)


def _pair(arguments: Any) -> tuple[Any, Any]:
    first, second = arguments
    return first, second


def _contains(arguments: Any) -> bool:
    items, value = _pair(arguments)
    return str(value) in [str(item) for item in items]


def _each_member_equals(arguments: Any) -> bool:
    items, value = _pair(arguments)
    return all(str(item) == str(value) for item in items)


def _each_member_in(arguments: Any) -> bool:
    items, allowed = _pair(arguments)
    return all(str(item) in [str(a) for a in allowed] for item in items)


def _equals(arguments: Any) -> bool:
    left, right = _pair(arguments)
    return str(left) == str(right)


# The rule-specific intrinsic functions (the only ones Rules may use), on their evaluated
# arguments; Ref is the one that reads the parameters.
_RULE_FUNCTIONS: dict[str, Callable[[Any], bool]] = {
    "Fn::Equals": _equals,
    "Fn::Not": lambda arguments: not arguments[0],
    "Fn::And": all,
    "Fn::Or": any,
    "Fn::Contains": _contains,
    "Fn::EachMemberEquals": _each_member_equals,
    "Fn::EachMemberIn": _each_member_in,
}


def _evaluate(expression: Any, values: Mapping[str, str]) -> Any:
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
    function = _RULE_FUNCTIONS.get(name)
    if function is None:
        raise ParameterRefusedError(
            f"{name} cannot be used in Rules", reason=ToolReason.INVALID_TEMPLATE
        )
    return function(arguments)
