"""What every settings piece shares: plain pydantic over the environment's flat strings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class SettingsPiece(BaseModel):
    """One concern's settings. A function's settings model is the pieces it reads (each
    step module declares its own), so what a function reads follows from its type."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def blank_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def split_hosts(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(host.strip().lower() for host in value.split(",") if host.strip())
    return value
