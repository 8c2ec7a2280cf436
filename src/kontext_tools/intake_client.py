"""A client of the HTTP intake (docs/openapi.yaml), as an app would write one: an upload
form asked for, the image posted with it, the edit followed to its end, its outputs
fetched. `kontext-pipeline edit --api` is built on it; so can scripts be."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kontext_pipeline.intake.requests import UPLOAD_TYPES

from kontext_tools.deployed.uploads import content_type_for

DONE = ("succeeded", "failed")


class IntakeRefusedError(Exception):
    """The intake refused the request: its problem document's reason and detail."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail} (HTTP {status})")
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True)
class IntakeClient:
    http: httpx.Client  # its base_url is the intake's URL; its headers carry the key

    @classmethod
    def connect(cls, intake_url: str, api_key: str, timeout: float = 60.0) -> IntakeClient:
        headers = {"Authorization": f"Bearer {api_key}"}
        return cls(httpx.Client(base_url=intake_url.rstrip("/"), headers=headers, timeout=timeout))

    def upload_edit(self, image: Path, prompt: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """An edit by upload: the form asked for, and the image posted with it."""
        content_type = content_type_for(image.name)
        if content_type not in UPLOAD_TYPES:
            raise IntakeRefusedError(0, "invalid_request", f"{image.name}: JPEG, PNG or WebP only")
        body = {"upload": True, "content_type": content_type, "prompt": prompt, **fields}
        edit = self._answer(self.http.post("/v1/edits", json=body))
        form = edit["upload"]
        files = {"file": (image.name, image.read_bytes(), content_type)}
        # The form's own URL (S3), with no key of ours: the policy is the authorization.
        posted = httpx.post(
            form["url"], data=form["fields"], files=files, timeout=self.http.timeout
        )
        if posted.status_code not in (200, 201, 204):
            raise IntakeRefusedError(posted.status_code, "upload_refused", posted.text[:300])
        return edit

    def edit_status(self, edit: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer(self.http.get(edit["status_url"]))

    def wait(
        self,
        edit: Mapping[str, Any],
        *,
        timeout: float,
        on_status: Callable[[str, float], None] | None = None,
    ) -> dict[str, Any]:
        """The edit's status once it has succeeded or failed; TimeoutError after `timeout`."""
        started = time.monotonic()
        while True:
            status = self.edit_status(edit)
            elapsed = time.monotonic() - started
            if on_status is not None:
                on_status(status["status"], elapsed)
            if status["status"] in DONE:
                return status
            if elapsed > timeout:
                raise TimeoutError(f"edit {edit['id']} still {status['status']}")
            time.sleep(1.0)

    def download_outputs(self, status: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """Each output (and the manifest) by its link, into out_dir."""
        out_dir.mkdir(parents=True, exist_ok=True)
        links = list(status.get("outputs") or [])
        if status.get("manifest_url"):
            links.append(status["manifest_url"])
        files = []
        for link in links:
            target = out_dir / httpx.URL(link).path.rsplit("/", 1)[-1]
            response = httpx.get(link, timeout=self.http.timeout)
            response.raise_for_status()
            target.write_bytes(response.content)
            files.append(target)
        return files

    @staticmethod
    def _answer(response: httpx.Response) -> dict[str, Any]:
        if response.is_success:
            document: dict[str, Any] = response.json()
            return document
        try:
            problem = response.json()
        except ValueError:
            raise IntakeRefusedError(
                response.status_code, "unexpected_answer", response.text[:300]
            ) from None
        raise IntakeRefusedError(
            response.status_code, problem.get("reason", "?"), problem.get("detail", "")
        )
