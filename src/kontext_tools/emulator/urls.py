"""Where the emulator's answers point: a request's URLs (under the owner/app only, as fal's
are), and its hosted output files."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class EmulatorUrls:
    base_url: str
    owner_app: str
    port: int

    def for_request(self, request_id: str) -> dict[str, str]:
        base = f"{self.base_url}/{self.owner_app}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def file(self, request_id: str, name: str) -> str:
        return f"{self.base_url}{_file_path(request_id, name)}"

    def file_again(self, request_id: str, name: str) -> str:
        """The same file, marked as reached through a redirect."""
        return f"{self.file(request_id, name)}?redirected=1"

    def file_elsewhere(self, request_id: str, name: str) -> str:
        """The same file on another host name (`localhost`) of this server."""
        return f"http://localhost:{self.port}{_file_path(request_id, name)}"

    def file_anew(self, request_id: str, name: str) -> str:
        """The same file under a URL never seen before (a redirect loop's next hop)."""
        return f"{self.file(request_id, name)}?hop={uuid.uuid4().hex[:6]}"


def _file_path(request_id: str, name: str) -> str:
    return f"/files/{request_id}/{name}"
