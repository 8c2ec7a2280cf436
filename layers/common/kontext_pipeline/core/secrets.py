"""Secrets from Secrets Manager, through Powertools Parameters (cached per warm function).

One reader for every secret the layer holds (the model's API key, the callbacks' signing
secret): what each secret's text means is decided by its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from kontext_pipeline.core.errors import ConfigurationError, Reason

if TYPE_CHECKING:
    from types_boto3_secretsmanager.client import SecretsManagerClient

# Rotation reaches warm functions within this many seconds.
SECRET_CACHE_SECONDS = 300


class SecretStore:
    """Reads secrets through one Powertools provider, whose cache lives as long as this
    store: the Runtime keeps one per warm function, so a secret is fetched once per
    SECRET_CACHE_SECONDS, not once per call."""

    def __init__(self, secrets_client: SecretsManagerClient | None) -> None:
        self._provider = SecretsProvider(boto3_client=secrets_client)

    def read(self, secret_id: str, *, what: str) -> str:
        """The secret's text; `what` names it in the error ("the API key secret")."""
        try:
            raw = self._provider.get(secret_id, max_age=SECRET_CACHE_SECONDS)
        except GetParameterError as exc:
            raise ConfigurationError(
                f"could not read {what} {secret_id!r}", reason=Reason.SECRET_UNAVAILABLE
            ) from exc
        return raw.decode() if isinstance(raw, bytes) else str(raw)
