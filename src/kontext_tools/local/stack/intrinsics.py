"""CloudFormation's intrinsic functions and conditions, resolved against what the local
deploy has created so far (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, ...)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from kontext_tools.local.account import ACCOUNT_ID, REGION
from kontext_tools.local.stack.local_stack import LocalStack
from kontext_tools.local.stack.template import TemplateError

_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def references(value: Any) -> set[str]:
    """The logical ids (and pseudo parameters) a template value refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.update(_references_of(key, inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(references(inner))
    return found


def _references_of(key: str, inner: Any) -> set[str]:
    if key == "Ref" and isinstance(inner, str):
        return {inner}
    if key == "Fn::GetAtt":
        return {inner[0] if isinstance(inner, list) else str(inner).split(".")[0]}
    if key == "Fn::Sub":
        text = inner[0] if isinstance(inner, list) else inner
        found = {m.split(".")[0] for m in _SUB_VARIABLE.findall(text)}
        return found | references(inner[1]) if isinstance(inner, list) else found
    return references(inner)


def is_no_value(value: Any) -> bool:
    return isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}


class Resolver:
    def __init__(self, stack: LocalStack, parameters: dict[str, str]) -> None:
        self._stack = stack
        self._parameters = parameters
        stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack.name}/{uuid.uuid4()}"
        self._pseudo = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::StackName": stack.name,
            "AWS::StackId": stack_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": lambda inner: self._ref(str(inner)),
            "Fn::GetAtt": self._get_att_of,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda inner: not self.resolve(inner)[0],
            "Fn::If": self._if,
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value if not is_no_value(item)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, inner),) = value.items()
            function = self._functions.get(key)
            if function is not None:
                return function(inner)
        return {k: self.resolve(v) for k, v in value.items() if not is_no_value(v)}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._stack.template.get("Conditions", {})[name]))

    def _ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._stack.physical_ids:
            return self._stack.physical_ids[name]
        raise TemplateError(f"cannot resolve Ref {name}")

    def _get_att_of(self, inner: Any) -> str:
        target, attribute = inner if isinstance(inner, list) else inner.split(".", 1)
        return self._get_att(target, attribute)

    def _get_att(self, target: str, attribute: str) -> str:
        try:
            return self._stack.attributes[target][attribute]
        except KeyError as exc:
            raise TemplateError(f"cannot resolve GetAtt {target}.{attribute}") from exc

    def _join(self, inner: Any) -> str:
        separator, items = inner
        return str(separator).join(str(item) for item in self.resolve(items))

    def _select(self, inner: Any) -> Any:
        index, items = self.resolve(inner)
        return items[int(index)]

    def _split(self, inner: Any) -> list[str]:
        separator, text = self.resolve(inner)
        return str(text).split(separator)

    def _equals(self, inner: Any) -> bool:
        left, right = self.resolve(inner)
        return bool(left == right)

    def _if(self, inner: Any) -> Any:
        condition, when_true, when_false = inner
        chosen = when_true if self.condition(condition) else when_false
        return self.resolve(chosen)

    def _sub(self, inner: Any) -> str:
        text, variables = (
            (inner[0], self.resolve(inner[1])) if isinstance(inner, list) else (inner, {})
        )

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".")[0] not in self._pseudo:
                target, attribute = name.split(".", 1)
                return self._get_att(target, attribute)
            return self._ref(name)

        return _SUB_VARIABLE.sub(replace, str(text))
