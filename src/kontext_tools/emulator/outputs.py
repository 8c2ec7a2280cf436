"""The model's outputs: made while the request runs, the request's once first needed (a
result, a webhook), and hosted as files whose answers the output-* faults spoil."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kontext_tools.emulator.faults import Faults
from kontext_tools.emulator.imaging import edit, encode, load_input
from kontext_tools.emulator.queue import RequestQueue
from kontext_tools.emulator.request import EmulatedRequest
from kontext_tools.emulator.urls import EmulatorUrls

CHUNK = 256 * 1024
# Runs whose outputs are made at once; more would only queue on two cores.
MODEL_WORKERS = 2

# What a run makes: the hosted files and the result's images, or why its input would not load.
Made = tuple[dict[str, tuple[str, bytes]], list[dict[str, Any]]] | Exception


@dataclass(frozen=True)
class HostedFile:
    """An answer for a hosted file: `body` is bytes or chunks; `declared` the length the
    headers claim (None: the body's own); `location` where a redirect points."""

    code: int
    content_type: str
    body: bytes | Iterator[bytes]
    declared: int | None = None
    location: str | None = None


FILE_NOT_FOUND = HostedFile(404, "application/json", b'{"detail": "Not found"}')
FORBIDDEN = HostedFile(403, "application/xml", b"<Error>AccessDenied</Error>")
SIGN_IN_PAGE = HostedFile(200, "text/html", b"<html><body>Sign in to continue</body></html>")


class Outputs:
    def __init__(
        self,
        queue: RequestQueue,
        faults: Faults,
        urls: EmulatorUrls,
    ) -> None:
        self._queue = queue
        self._faults = faults
        self._urls = urls
        self._render_lock = threading.Lock()
        # fal's outputs are ready the moment it says COMPLETED, so the Pillow edit runs while
        # the request does: made after COMPLETED, it would count as the pipeline's time.
        self._model = ThreadPoolExecutor(MODEL_WORKERS, thread_name_prefix="emulator-model")
        self._making: dict[str, Future[Made]] = {}

    def start_making(self, request: EmulatedRequest) -> None:
        """(under the queue lock) The request's run is scheduled: make its outputs meanwhile."""
        if request.error or request.request_id in self._making:
            return
        self._making[request.request_id] = self._model.submit(self._made, request)

    def stop(self) -> None:
        self._model.shutdown(wait=False, cancel_futures=True)

    def render(self, request: EmulatedRequest) -> None:
        """The request's outputs, once; an input that will not load is a 422."""
        with self._render_lock:
            if request.outputs is not None or request.error:
                return
            made = self._take_made(request)
            if isinstance(made, Exception):  # any fetch or decode failure: the input's error
                with self._queue.lock:
                    request.validation = [
                        {
                            "loc": ["body", "image_url"],
                            "type": "image_load_error",
                            "msg": f"Could not load image from image_url: {made}",
                        }
                    ]
                    request.error, request.error_type = (
                        "Image could not be loaded",
                        "image_load_error",
                    )
                return
            files, outputs = made
            with self._queue.lock:
                request.files, request.outputs = files, outputs

    def _take_made(self, request: EmulatedRequest) -> Made:
        """What the run made; made now when it has not started (a burst's backlog)."""
        with self._queue.lock:
            making = self._making.pop(request.request_id, None)
        if making is not None and not making.cancel():
            return making.result()
        return self._made(request)

    def _made(self, request: EmulatedRequest) -> Made:
        try:
            source = load_input(str(request.body.get("image_url", "")))
        except Exception as exc:  # the model's input error, told when the result is asked for
            return exc
        return self._encoded(request, edit(source, request.body, request.seed))

    def _encoded(
        self, request: EmulatedRequest, images: list[Any]
    ) -> tuple[dict[str, tuple[str, bytes]], list[dict[str, Any]]]:
        outputs, files = [], {}
        fmt = "png" if request.body.get("output_format") == "png" else "jpeg"
        content_type = f"image/{fmt}"
        for index, image in enumerate(images):
            data = encode(image, fmt)
            name = f"{index}.{'png' if fmt == 'png' else 'jpg'}"
            files[name] = (content_type, data)
            url = (
                f"data:{content_type};base64,{base64.b64encode(data).decode()}"
                if request.body.get("sync_mode") is True
                else self._urls.file(request.request_id, name)
            )
            outputs.append(
                {
                    "url": url,
                    "width": image.width,
                    "height": image.height,
                    "content_type": content_type,
                    "file_name": name,
                    "file_size": len(data),
                }
            )
        return files, outputs

    def file(self, request_id: str, name: str, redirected: bool = False) -> HostedFile:
        """A hosted file, as the output-* faults let it be served."""
        with self._queue.lock:
            request = self._queue.find(request_id)
            if request is None or name not in request.files:
                return FILE_NOT_FOUND
            refused = self._refusal(request_id, name, redirected)
            if refused is not None:
                return refused
            content_type, data = request.files[name]
            truncated = self._faults.hits(request_id, "output-truncated")
            huge, megabytes = self._faults.take(request_id, "output-huge")
        if truncated:
            return HostedFile(200, content_type, data[: len(data) // 2], len(data))
        if huge:
            total = max(len(data), int(float(megabytes or 50) * 1024 * 1024))
            return HostedFile(200, content_type, _padded(data, total), total)
        return HostedFile(200, content_type, data, len(data))

    def _refusal(self, request_id: str, name: str, redirected: bool) -> HostedFile | None:
        """(under the lock) A 403, a sign-in page or a redirect instead of the file."""
        if self._faults.hits(request_id, "output-403"):
            return FORBIDDEN
        if self._faults.hits(request_id, "output-not-image"):
            return SIGN_IN_PAGE
        redirect = self._redirect(request_id, name, redirected)
        if redirect:
            return HostedFile(302, "text/html", b"<html>Found</html>", location=redirect)
        return None

    def _redirect(self, request_id: str, name: str, redirected: bool) -> str | None:
        """(under the lock) Where a redirect fault sends a file request, if one applies."""
        if self._faults.hits(request_id, "output-redirect-loop"):
            return self._urls.file_anew(request_id, name)
        if self._faults.hits(request_id, "output-redirect-offsite"):
            return self._urls.file_elsewhere(request_id, name)
        if not redirected and self._faults.hits(request_id, "output-redirect"):
            return self._urls.file_again(request_id, name)
        return None


def _padded(data: bytes, total: int) -> Iterator[bytes]:
    yield data
    left = total - len(data)
    block = b"\0" * CHUNK
    while left > 0:
        yield block[: min(CHUNK, left)]
        left -= CHUNK
