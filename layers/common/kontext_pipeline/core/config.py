"""Settings from the environment, validated once at cold start.

template.yaml sets these as Lambda environment variables; the local run sets the same
names. Each setting is defined once, with its description, in a piece (settings_places.py:
where things are; settings_limits.py: how a job runs). Each function's settings model is
the pieces it reads, declared beside its step (`SubmitEditSettings` in
steps/submit_edit.py, ...), so a function is given, and checks at cold start, only what it
uses; PipelineSettings, every piece at once, feeds the README's configuration reference.

Plain pydantic over `os.environ` (upper-case names, read case-insensitively): the
variables are flat strings, so pydantic-settings' sources and JSON decoding add nothing
but its import (about 30 ms of every cold start).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from kontext_pipeline.core.errors import ConfigurationError
from kontext_pipeline.core.settings_base import SettingsPiece
from kontext_pipeline.core.settings_limits import (
    ConcurrencyCapSettings,
    DailyCapSettings,
    OutputSettings,
    PollSettings,
    SubmitSettings,
)
from kontext_pipeline.core.settings_places import (
    CallbackSettings,
    EventBusSettings,
    HttpSettings,
    IntakePolicySettings,
    JobsTableSettings,
    ModelQueueSettings,
    ModelSettings,
    NotificationSettings,
    ScopeSettings,
    TriggerSettings,
    WebhookSettings,
)

__all__ = [
    "CallbackSettings",
    "ConcurrencyCapSettings",
    "DailyCapSettings",
    "EventBusSettings",
    "HttpSettings",
    "IntakePolicySettings",
    "JobsTableSettings",
    "ModelQueueSettings",
    "ModelSettings",
    "NotificationSettings",
    "OutputSettings",
    "PipelineSettings",
    "PollSettings",
    "ScopeSettings",
    "SettingsPiece",
    "SubmitSettings",
    "TriggerSettings",
    "WebhookSettings",
    "environment_values",
    "load_settings",
]


class PipelineSettings(
    IntakePolicySettings,
    CallbackSettings,
    WebhookSettings,
    NotificationSettings,
    EventBusSettings,
    OutputSettings,
    SubmitSettings,
    PollSettings,
    DailyCapSettings,
    ConcurrencyCapSettings,
    JobsTableSettings,
    TriggerSettings,
    ScopeSettings,
    ModelQueueSettings,
    HttpSettings,
    ModelSettings,
):
    """Every setting of every function: the configuration reference, the local run. (The
    bases are listed last piece first: pydantic orders fields from the last base.)"""


SettingsT = TypeVar("SettingsT", bound=SettingsPiece)


def environment_values(
    model: type[SettingsPiece], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each of the model's settings from the environment, by its name in any case."""
    source = os.environ if environ is None else environ
    by_name = {key.lower(): value for key, value in source.items()}
    return {name: by_name[name] for name in model.model_fields if name in by_name}


def load_settings(model: type[SettingsT], **overrides: Any) -> SettingsT:
    """Read and validate the environment; a bad deployment fails loudly at cold start."""
    try:
        return model(**{**environment_values(model), **overrides})
    except ValueError as exc:
        raise ConfigurationError(f"invalid pipeline settings: {exc}") from exc
