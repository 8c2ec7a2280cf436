"""Checks of what the person typed, made before anything is uploaded or stood up.

A refused job still costs a trip to AWS (or a local stack's start), so the prompt, the
model's options, the metadata, the images and the --out folder are checked here first.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kontext_pipeline.storage.metadata import MAX_PROMPT_CHARS, validate_options

from kontext_tools.cli.exits import CliError
from kontext_tools.deployed.uploads import CONTENT_TYPES

OPTION_NAMES = (
    "aspect_ratio",
    "num_images",
    "output_format",
    "seed",
    "guidance_scale",
    "safety_tolerance",
    "enhance_prompt",
    "sync_mode",
)
METADATA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# A folder's images: what an upload can name a content type for.
IMAGE_SUFFIXES = tuple(CONTENT_TYPES)
TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "template.yaml"


@dataclass(frozen=True)
class EditRequest:
    """What `edit` and `local` ask of the pipeline for each image, checked."""

    prompt: str
    options: dict[str, Any]
    metadata: dict[str, str]
    out_dir: Path | None


def checked_edit_request(args: argparse.Namespace) -> EditRequest:
    """The prompt, the model's options, the metadata and --out, in that order."""
    return EditRequest(
        prompt=checked_prompt(args.prompt),
        options=chosen_options(args),
        metadata=parse_metadata(args.metadata),
        out_dir=checked_out_dir(args.out),
    )


def chosen_options(args: argparse.Namespace) -> dict[str, Any]:
    """The model's options given as flags, validated by the pipeline's own rules."""
    options = {
        name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name, None) is not None
    }
    validate_options(options)
    return options


def parse_metadata(items: Sequence[str] | None) -> dict[str, str]:
    """`--metadata NAME=VALUE`, repeatable: any user metadata (callback-url, say).

    The prompt and the model's options have flags of their own, checked before upload.
    """
    metadata: dict[str, str] = {}
    for item in items or []:
        name, separator, value = item.partition("=")
        name = name.strip().lower()
        if not separator or not METADATA_NAME.match(name):
            raise CliError(f"--metadata {item!r}: write NAME=VALUE (NAME of letters, digits, -, _)")
        if name.replace("-", "_") in ("prompt", *OPTION_NAMES):
            raise CliError(f"--metadata {name}: use --{name.replace('_', '-')} instead")
        metadata[name] = value
    return metadata


def checked_prompt(prompt: str) -> str:
    """The pipeline's prompt rules, applied before upload (a refused job still costs a trip)."""
    if not prompt.strip():
        raise CliError("the prompt is empty: say what to change, e.g. --prompt 'make it snow'")
    if len(prompt.strip()) > MAX_PROMPT_CHARS:
        raise CliError(
            f"the prompt is {len(prompt.strip()):,} characters; the pipeline accepts at most "
            f"{MAX_PROMPT_CHARS:,}"
        )
    return prompt


def checked_image(path: str) -> Path:
    image = Path(path)
    if not image.is_file():
        raise CliError(f"{image} is not a file: give the path of the image to edit")
    return image


def checked_images(paths: Sequence[str]) -> list[Path]:
    """Each --image: a file, or a folder whose images (by suffix, sorted) are all taken."""
    images: list[Path] = []
    for path in paths:
        folder = Path(path)
        images += _images_in(folder) if folder.is_dir() else [checked_image(path)]
    return images


def _images_in(folder: Path) -> list[Path]:
    found = sorted(
        item
        for item in folder.iterdir()
        if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise CliError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
            "give image files or a folder of them"
        )
    return found


def checked_out_dir(path: str | None) -> Path | None:
    """A folder results can be written to, checked now so a bad path fails before the job
    runs; made only when something is written into it."""
    if path is None:
        return None
    out_dir = Path(path)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out_dir} is a file, not a folder: choose another --out")
    existing = next(folder for folder in (out_dir, *out_dir.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise CliError(f"--out {out_dir} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"--out {out_dir} is not writable: choose another --out")
    return out_dir


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`30m`, `2h`, `1d`, `45s` ago, or an ISO 8601 time."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(
            f"--since {text!r}: give a duration such as 30m, 2h, 1d, or an ISO time"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_parameter_overrides(items: Sequence[str], template: Path) -> dict[str, str]:
    """`Name=Value` or `ParameterKey=Name,ParameterValue=Value` (sam deploy's two forms),
    checked against the template's parameters and their allowed values."""
    from kontext_tools.local.stack import load_template  # noqa: PLC0415 - local extras

    declared: dict[str, Any] = load_template(template).get("Parameters", {})
    overrides: dict[str, str] = {}
    for item in items:
        name, value = _parameter_override(item)
        _check_parameter(name, value, declared)
        overrides[name] = value
    return overrides


def _parameter_override(item: str) -> tuple[str, str]:
    long_form = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", item, re.DOTALL)
    name, separator, value = (
        (long_form.group(1), "=", long_form.group(2)) if long_form else item.partition("=")
    )
    if not separator or not name:
        raise CliError(f"--parameter-overrides {item!r}: write Name=Value")
    return name, value


def _check_parameter(name: str, value: str, declared: dict[str, Any]) -> None:
    if name not in declared:
        raise CliError(
            f"--parameter-overrides: {name!r} is not a template parameter; "
            f"known: {', '.join(sorted(declared))}"
        )
    allowed = declared[name].get("AllowedValues")
    if allowed and value not in [str(choice) for choice in allowed]:
        raise CliError(
            f"--parameter-overrides: {name}={value!r} is not one of "
            f"{', '.join(str(choice) for choice in allowed)}"
        )
