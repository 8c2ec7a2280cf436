"""The model's API key: from Secrets Manager through Powertools Parameters (cached), or,
for local runs only, from the environment. It is held as a SecretStr and never logged.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from pydantic import SecretStr

from kontext_pipeline.config import PipelineSettings
from kontext_pipeline.errors import ConfigurationError, Reason

# Rotation reaches warm functions within this many seconds.
SECRET_CACHE_SECONDS = 300
SECRET_JSON_FIELDS = ("FAL_KEY", "fal_key", "api_key", "key")


def resolve_api_key(settings: PipelineSettings, secrets_client: Any | None) -> SecretStr | None:
    if settings.fal_key is not None:
        return settings.fal_key
    if not settings.fal_key_secret_id:
        return None
    provider = SecretsProvider(boto3_client=secrets_client)
    try:
        raw = provider.get(settings.fal_key_secret_id, max_age=SECRET_CACHE_SECONDS)
    except GetParameterError as exc:
        raise ConfigurationError(
            f"could not read the API key secret {settings.fal_key_secret_id!r}",
            reason=Reason.SECRET_UNAVAILABLE,
        ) from exc
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
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
