"""The model's own checks of a request body, as fal's 422 detail items: one rule a field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ASPECT_RATIOS = {
    "21:9": 21 / 9,
    "16:9": 16 / 9,
    "4:3": 4 / 3,
    "3:2": 3 / 2,
    "1:1": 1.0,
    "2:3": 2 / 3,
    "3:4": 3 / 4,
    "9:16": 9 / 16,
    "9:21": 9 / 21,
}
_SKIPPED = object()  # an absent field the rule does not check


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class FieldRule:
    name: str
    accepts: Callable[[Any], bool]
    message: str
    # What an absent field counts as (a required one: None, which no rule accepts).
    when_absent: Any = _SKIPPED

    def problem(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if self.name not in body and self.when_absent is _SKIPPED:
            return None
        if self.accepts(body.get(self.name, self.when_absent)):
            return None
        return {"loc": ["body", self.name], "msg": self.message, "type": "value_error"}


RULES = (
    FieldRule(
        "prompt",
        lambda value: isinstance(value, str) and bool(value.strip()),
        "field required",
        when_absent=None,
    ),
    FieldRule(
        "image_url",
        lambda value: isinstance(value, str) and value.startswith(("http://", "https://", "data:")),
        "must be an http(s) URL or a data URI",
        when_absent=None,
    ),
    FieldRule(
        "output_format",
        lambda value: value in ("jpeg", "png"),
        "must be 'jpeg' or 'png'",
        when_absent="jpeg",
    ),
    FieldRule(
        "num_images",
        lambda value: _is_integer(value) and 1 <= value <= 4,
        "ensure this value is between 1 and 4",
        when_absent=1,
    ),
    FieldRule(
        "guidance_scale",
        lambda value: isinstance(value, int | float) and 1 <= value <= 20,
        "ensure this value is between 1 and 20",
        when_absent=3.5,
    ),
    FieldRule("seed", _is_integer, "value is not a valid integer"),
    FieldRule(
        "safety_tolerance", lambda value: value in tuple("123456"), "must be one of '1'..'6'"
    ),
    FieldRule(
        "aspect_ratio",
        lambda value: value in ASPECT_RATIOS,
        f"must be one of {', '.join(ASPECT_RATIOS)}",
    ),
    FieldRule("sync_mode", lambda value: isinstance(value, bool), "value is not a valid boolean"),
    FieldRule(
        "enhance_prompt", lambda value: isinstance(value, bool), "value is not a valid boolean"
    ),
)


def validate(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's own checks, as 422 detail items."""
    return [problem for rule in RULES if (problem := rule.problem(body)) is not None]
