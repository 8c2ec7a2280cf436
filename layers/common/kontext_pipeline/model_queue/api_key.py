"""The model's API key: from Secrets Manager through Powertools Parameters (cached), or,
for local runs only, from the environment. It is held as a SecretStr and never logged.
"""

from __future__ import annotations

import json

from pydantic import SecretStr

from kontext_pipeline.core.config import ModelQueueSettings
from kontext_pipeline.core.errors import ConfigurationError, Reason
from kontext_pipeline.core.secrets import SecretStore

SECRET_JSON_FIELDS = ("FAL_KEY", "fal_key", "api_key", "key")


def resolve_api_key(settings: ModelQueueSettings, secrets: SecretStore) -> SecretStr | None:
    if settings.fal_key is not None:
        return settings.fal_key
    if not settings.fal_key_secret_id:
        return None
    text = secrets.read(settings.fal_key_secret_id, what="the API key secret")
    return SecretStr(_key_from_secret_text(text))


def _key_from_secret_text(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            for name in SECRET_JSON_FIELDS:
                if isinstance(document.get(name), str) and document[name].strip():
                    return str(document[name]).strip()
        raise ConfigurationError(
            f"the API key secret is JSON without one of {', '.join(SECRET_JSON_FIELDS)}",
            reason=Reason.SECRET_UNAVAILABLE,
        )
    if not stripped:
        raise ConfigurationError("the API key secret is empty", reason=Reason.SECRET_UNAVAILABLE)
    return stripped
