"""`index.html` beside a job's downloaded results: the input next to each output.

People compare images by looking. The page is self-contained (inline CSS, images by
relative path, no script, no network), so it works opened straight from disk and keeps
working when the folder is zipped or moved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

REPORT_NAME = "index.html"

_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("kontext_tools", "templates"),
    # Prompts, keys and failure messages come from whoever uploaded: text, never markup.
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class _Figure:
    name: str
    caption: str
    size: int | None


def write_report(
    out_dir: Path,
    *,
    job: Mapping[str, Any],
    input_image: Path | None = None,
    outputs: Sequence[tuple[Path, Mapping[str, Any]]] = (),
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Write `index.html` into out_dir and return its path.

    `job` has the notification's fields (status, source.key, prompt, request_id, seed,
    timings, has_nsfw_concepts, failure{reason, message}); `outputs` pairs each downloaded
    file with its output record (width, height, size, content_type). The input is copied
    into out_dir so the page only refers to files beside it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    source = job.get("source") or {}
    key = source.get("key", "") if isinstance(source, Mapping) else ""
    failure = job.get("failure")
    page = _PAGES.get_template("index.html.j2").render(
        key=key,
        status=str(job.get("status") or "UNKNOWN"),
        failure=failure if isinstance(failure, Mapping) else None,
        facts=_facts(job, key, options),
        figures=[*_input_figure(out_dir, input_image), *_output_figures(job, outputs)],
    )
    target = out_dir / REPORT_NAME
    target.write_text(page, encoding="utf-8")
    return target


def _input_figure(out_dir: Path, input_image: Path | None) -> list[_Figure]:
    """The input, copied beside the page (when there is one to show)."""
    if input_image is None or not input_image.is_file():
        return []
    local_input = out_dir / f"input{input_image.suffix.lower()}"
    if input_image.resolve() != local_input.resolve():
        shutil.copyfile(input_image, local_input)
    return [_Figure(local_input.name, "input", _size_of(local_input))]


def _output_figures(
    job: Mapping[str, Any], outputs: Sequence[tuple[Path, Mapping[str, Any]]]
) -> list[_Figure]:
    nsfw = list(job.get("has_nsfw_concepts") or [])
    figures = []
    for index, (path, record) in enumerate(outputs):
        caption = f"output {index}"
        if record.get("width") and record.get("height"):
            caption += f" · {record['width']}x{record['height']}"
        if record.get("content_type"):
            caption += f" · {record['content_type']}"
        if index < len(nsfw) and nsfw[index]:
            caption += " · flagged NSFW by the model"
        figures.append(_Figure(path.name, caption, _size_of(path)))
    return figures


def _facts(
    job: Mapping[str, Any], key: str, options: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    facts: list[tuple[str, Any]] = [
        ("input key", key),
        ("prompt", job.get("prompt")),
        ("options", _options_text(options)),
        ("seed", job.get("seed")),
        ("timings", _timings_text(job.get("timings"))),
        ("request id", job.get("request_id")),
        ("execution", job.get("execution")),
        ("created", job.get("created_at")),
    ]
    return [(name, str(value)) for name, value in facts if value not in (None, "", {}, [])]


def _size_of(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _options_text(options: Mapping[str, Any] | None) -> str:
    if not options:
        return ""
    chosen = {name: value for name, value in options.items() if value is not None}
    return ", ".join(f"{name.replace('_', '-')}={value}" for name, value in sorted(chosen.items()))


def _timings_text(timings: Any) -> str:
    if not isinstance(timings, Mapping) or not timings:
        return ""
    return ", ".join(
        f"{name} {value:.2f} s" if isinstance(value, int | float) else f"{name} {value}"
        for name, value in timings.items()
    )


def manifest_options(manifest_path: Path) -> dict[str, Any]:
    """The options recorded in a downloaded manifest.json (empty when there is none)."""
    if not manifest_path.is_file():
        return {}
    options = json.loads(manifest_path.read_text(encoding="utf-8")).get("options") or {}
    return dict(options) if isinstance(options, Mapping) else {}
