"""One answer of the emulated queue, before it is written to the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A JSON document with its headers, or `raw` bytes sent as they are (the ingress's
    HTML page, a status cut off half-way), with no headers of fal's."""

    code: int
    document: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "text/html"
