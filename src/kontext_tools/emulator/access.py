"""The API key: which header carries it and in what form, whether a call presents it, and
every value presented (a test reads them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.datastructures import Headers

DEFAULT_MODEL_PATH = "fal-ai/flux-pro/kontext/max"


@dataclass(frozen=True)
class EmulatedEndpoint:
    """The model the emulator serves, and how callers present their key (as the pipeline's
    FalEndpoint is configured)."""

    model_path: str = DEFAULT_MODEL_PATH
    auth_header: str = "Authorization"
    auth_scheme: str = "Key"

    @property
    def path(self) -> str:
        return self.model_path.strip("/")

    @property
    def owner_app(self) -> str:
        return "/".join(self.path.split("/")[:2])


class KeyCheck:
    def __init__(self, endpoint: EmulatedEndpoint, api_key: str | None) -> None:
        scheme = endpoint.auth_scheme
        self._expected = f"{scheme} {api_key}".strip() if api_key else None
        self._header = endpoint.auth_header
        self._seen: list[str] = []
        self._lock = threading.Lock()

    def admits(self, headers: Headers) -> bool:
        """Whether the call presents the key (any call, when no key is set)."""
        presented = headers.get(self._header)
        if presented is not None:
            with self._lock:
                self._seen.append(presented)
        return not self._expected or presented == self._expected

    def seen(self) -> list[str]:
        with self._lock:
            return list(self._seen)
