"""What a local deploy created: physical ids, attributes, outputs, and where each
function's built code lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kontext_tools.local.stack.sam_translation import FunctionSource


@dataclass
class LocalStack:
    name: str
    template: dict[str, Any]
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSource] = field(default_factory=dict)  # by function name
    # Asynchronous invocation settings by function name: retries and on-failure destination.
    async_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_emulated: list[str] = field(default_factory=list)
    # Which checks each state machine's definition passed before it was created.
    definition_checks: dict[str, list[str]] = field(default_factory=dict)
