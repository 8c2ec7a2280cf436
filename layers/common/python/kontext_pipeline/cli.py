"""`kontext-pipeline`: run the pipeline locally, or the model-queue emulator on its own.

kontext-pipeline local --image photo.jpg --prompt "make it snow" --out demo-output
kontext-pipeline emulator --port 8787
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kontext_pipeline.errors import InvalidInputError
from kontext_pipeline.metadata import validate_options
from kontext_pipeline.models import ASPECT_RATIOS, OUTPUT_FORMATS, SAFETY_TOLERANCES


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's options, as flags; validated by the pipeline's own rules before upload."""
    parser.add_argument("--prompt", required=True, help="what to change in the image")
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    parser.add_argument("--num-images", type=int, help="1 to 4")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--guidance-scale", type=float, help="1 to 20")
    parser.add_argument("--safety-tolerance", choices=SAFETY_TOLERANCES)
    parser.add_argument("--enhance-prompt", action="store_true", default=None)


def chosen_options(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "aspect_ratio",
        "num_images",
        "output_format",
        "seed",
        "guidance_scale",
        "safety_tolerance",
        "enhance_prompt",
    )
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    validate_options(options)
    return options


def run_local(args: argparse.Namespace) -> int:
    from kontext_pipeline.emulator import EmulatorTiming  # noqa: PLC0415 - local extras
    from kontext_pipeline.local.pipeline import LocalPipeline, Progress  # noqa: PLC0415

    options = chosen_options(args)
    image = Path(args.image)
    if not image.is_file():
        raise InvalidInputError(f"{image} is not a file", reason="missing_image")
    fal_base_url = os.environ.get("FAL_BASE_URL") or None
    fal_key = os.environ.get("FAL_KEY") or None
    out_dir = Path(args.out)
    target = fal_base_url or "the local model emulator"
    print(f"Standing up the pipeline on local AWS emulation (model queue: {target}) ...")
    with LocalPipeline(
        fal_base_url=fal_base_url,
        fal_key=fal_key,
        emulator_timing=EmulatorTiming(
            queue_seconds=args.queue_seconds, run_seconds=args.model_seconds
        ),
    ) as pipeline:
        source = pipeline.upload(image, prompt=args.prompt, options=options)
        print(f"Uploaded {source.s3_uri} with prompt {args.prompt!r} {options or ''}")

        last_line = ""

        def show(progress: Progress) -> None:
            nonlocal last_line
            line = f"  {progress.elapsed:5.1f} s  state {progress.state}"
            if progress.status:
                line += f" · model {progress.status}"
            if progress.queue_position is not None:
                line += f" (queue position {progress.queue_position})"
            if line.split("s  ", 1)[1] != last_line.split("s  ", 1)[-1]:
                print(line, flush=True)
            last_line = line

        started = time.monotonic()
        received = pipeline.wait_for_notification(source, timeout=args.timeout, on_progress=show)
        notification = received.notification
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "notification.json").write_text(json.dumps(received.envelope, indent=2))
        if notification.status == "FAILED" and notification.failure:
            print(
                f"FAILED after {time.monotonic() - started:.1f} s: "
                f"{notification.failure.reason}: {notification.failure.message}"
            )
            print(f"Notification: {out_dir / 'notification.json'}")
            return 1
        files = pipeline.download_outputs(notification, out_dir)
        print(
            f"SUCCEEDED in {time.monotonic() - started:.1f} s (request {notification.request_id})"
        )
        for output in notification.outputs:
            print(f"  {output.s3_uri}  {output.width}x{output.height}  {output.size} bytes")
        print(f"Results in {out_dir.resolve()}/:")
        for path in [*files, out_dir / "notification.json"]:
            print(f"  {path.name}")
    return 0


def run_emulator(args: argparse.Namespace) -> int:
    from kontext_pipeline.emulator import main as emulator_main  # noqa: PLC0415

    return emulator_main(args.emulator_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kontext-pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser(
        "local", help="run the whole pipeline on this machine (moto + model emulator)"
    )
    local.add_argument("--image", required=True, help="image file to upload")
    add_option_arguments(local)
    local.add_argument("--out", default="demo-output", help="folder for outputs (demo-output)")
    local.add_argument(
        "--model-seconds", type=float, default=1.0, help="emulated model run time (1.0)"
    )
    local.add_argument(
        "--queue-seconds", type=float, default=0.3, help="emulated time in the queue (0.3)"
    )
    local.add_argument("--timeout", type=float, default=180.0, help="give up after (180 s)")
    local.set_defaults(run=run_local)

    emulator = commands.add_parser("emulator", help="run the model-queue emulator alone")
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER)
    emulator.set_defaults(run=run_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = int(args.run(args))
    except InvalidInputError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
