"""One request as the emulated queue keeps it: its body, its clock, its faults, its outputs
and what was seen of it (polls, status streams, result fetches, webhook attempts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EmulatedRequest:
    request_id: str
    body: dict[str, Any]
    submitted_at: float
    started_at: float | None = None
    completed_at: float | None = None
    status: str = "IN_QUEUE"
    cancelled: bool = False
    cancel_requested: bool = False
    gateway_request_id: str = ""
    result_fetches: int = 0
    webhook_attempts: list[float] = field(default_factory=list)
    error: str | None = None
    webhook_url: str | None = None
    faults: tuple[str, ...] = ()
    model_seconds: float = 0.0
    run_seconds: float = 0.0
    status_polls: int = 0
    status_streams: int = 0  # status streams opened
    error_type: str | None = None
    validation: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] | None = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    seed: int = 0
