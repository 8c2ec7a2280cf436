"""Reasons the tools (CLI, local run) give for what they refuse; the pipeline's are `Reason`.

They travel in the same `PipelineError` hierarchy, so the CLI handles every error one way
(`error: <message>` and an exit code from the README); the reason names the kind of refusal
for code and tests.
"""

from __future__ import annotations

from enum import StrEnum


class ToolReason(StrEnum):
    NO_CREDENTIALS = "no_credentials"
    STACK_UNAVAILABLE = "stack_unavailable"
    STACK_NOT_FOUND = "stack_not_found"
    STACK_BUSY = "stack_busy"
    TEARDOWN_FAILED = "teardown_failed"
    NO_TRIGGER = "no_trigger"
    INVALID_KEY = "invalid_key"
    MISSING_KEY = "missing_key"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_TEMPLATE = "invalid_template"
