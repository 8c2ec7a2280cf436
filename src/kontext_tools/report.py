"""`index.html` beside a job's downloaded results: the input next to each output.

People compare images by looking. The page is self-contained (inline CSS, images by
relative path, no script, no network), so it works opened straight from disk and keeps
working when the folder is zipped or moved.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPORT_NAME = "index.html"

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.3rem; margin: 0 0 .8rem; }
.status { display: inline-block; padding: .1rem .6rem; border-radius: .3rem; color: #fff; }
.SUCCEEDED { background: #2a7a3b; } .FAILED { background: #b3261e; }
.RUNNING, .UNKNOWN { background: #666; }
table.facts { border-collapse: collapse; margin: 1rem 0; }
table.facts th { text-align: left; padding: .2rem 1rem .2rem 0; color: #555; font-weight: 500;
  vertical-align: top; }
table.facts td { padding: .2rem 0; white-space: pre-wrap; word-break: break-word; }
.failure { border-left: 4px solid #b3261e; background: #fbeaea; padding: .6rem 1rem; }
.images { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; max-width: 46vw; }
figure img { max-width: 100%; max-height: 70vh; border: 1px solid #ccc; display: block; }
figcaption { font-size: .85rem; color: #555; margin-top: .3rem; }
"""


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
    figures = [*_input_figure(out_dir, input_image), *_output_figures(job, outputs)]
    status = str(job.get("status") or "UNKNOWN")
    source = job.get("source") or {}
    key = source.get("key", "") if isinstance(source, Mapping) else ""
    body = (
        f"{_failure_html(job)}\n"
        f'<table class="facts">{_facts_rows(job, key, options)}</table>\n'
        f'<div class="images">{"".join(figures)}</div>'
    )
    target = out_dir / REPORT_NAME
    target.write_text(_page(key, status, body), encoding="utf-8")
    return target


def _page(key: str, status: str, body: str) -> str:
    title = f"kontext-pipeline · {status} · {key}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(key or "job")} <span class="status {html.escape(status)}" id="status">{
        html.escape(status)
    }</span></h1>
{body}
</body>
</html>
"""


def _input_figure(out_dir: Path, input_image: Path | None) -> list[str]:
    """The input, copied beside the page (when there is one to show)."""
    if input_image is None or not input_image.is_file():
        return []
    local_input = out_dir / f"input{input_image.suffix.lower()}"
    if input_image.resolve() != local_input.resolve():
        shutil.copyfile(input_image, local_input)
    return [_figure(local_input.name, "input", _size_of(local_input))]


def _output_figures(
    job: Mapping[str, Any], outputs: Sequence[tuple[Path, Mapping[str, Any]]]
) -> list[str]:
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
        figures.append(_figure(path.name, caption, _size_of(path)))
    return figures


def _facts_rows(job: Mapping[str, Any], key: str, options: Mapping[str, Any] | None) -> str:
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
    return "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in facts
        if value not in (None, "", {}, [])
    )


def _failure_html(job: Mapping[str, Any]) -> str:
    failure = job.get("failure")
    if not isinstance(failure, Mapping):
        return ""
    return (
        '<div class="failure" id="failure"><strong>'
        f"{html.escape(str(failure.get('reason', 'failed')))}</strong>: "
        f"{html.escape(str(failure.get('message', '')))}</div>"
    )


def _figure(name: str, caption: str, size: int | None) -> str:
    size_text = f" · {size:,} bytes" if size is not None else ""
    return (
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption + size_text)}</figcaption></figure>"
    )


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
