"""`kontext-pipeline`: edit images through a deployed stack, or run everything locally.

    kontext-pipeline edit photo.jpg --prompt "make it snow" --out edited/   (deployed stack)
    kontext-pipeline edit photo.jpg --prompt "..." --api INTAKE_URL   (by HTTP, no AWS SDK)
    kontext-pipeline status inputs/abc-photo.jpg                            (a job's state)
    kontext-pipeline results inputs/abc-photo.jpg --out edited/             (its outputs)
    kontext-pipeline jobs --status FAILED --since 1h                        (recent jobs)
    kontext-pipeline redrive                                    (replay the trigger's DLQ)
    kontext-pipeline put-key                                                (the model's key)
    kontext-pipeline teardown [--keep-bucket]
    kontext-pipeline local --image photo.jpg --prompt "make it snow"        (no AWS at all)
    kontext-pipeline local --image photos/ --concurrency 2 --prompt "..."   (a local burst)
    kontext-pipeline local --image photos/ --backfill --prompt "..."        (a local backfill)
    kontext-pipeline local --serve                      (a local stack's HTTP intake, curl it)
    kontext-pipeline backfill --prefix inputs/2025/ [--dry-run]     (edit what is there)
    kontext-pipeline callback-secret                            (signs per-job callbacks)
    kontext-pipeline api-key create NAME | list | revoke NAME   (who may call the intake)
    kontext-pipeline emulator --port 8787                                   (the model emulator)

The stack is `--stack NAME`, else the stack_name in ./samconfig.toml, else
`kontext-pipeline`. `--json` prints one JSON document on stdout for scripts; progress
goes to stderr. Exit codes: 0 success, 1 the job failed, 2 bad usage, input or setup,
3 gave up waiting (the job may still finish), 130 interrupted.
"""

# The docstring above is the command's --help; what each command runs is in its own module.

from __future__ import annotations

import argparse
import os
from importlib.metadata import PackageNotFoundError, version

from kontext_pipeline.core.models import ASPECT_RATIOS, OUTPUT_FORMATS, SAFETY_TOLERANCES

from kontext_tools.cli.api_keys import run_api_key
from kontext_tools.cli.aws import DEFAULT_STACK
from kontext_tools.cli.backfill import run_backfill
from kontext_tools.cli.edit import run_edit, run_results, run_status
from kontext_tools.cli.edit_api import run_edit_api
from kontext_tools.cli.local import run_local
from kontext_tools.cli.serve import run_serve
from kontext_tools.cli.stack import (
    run_callback_secret,
    run_jobs,
    run_put_key,
    run_redrive,
    run_teardown,
)
from kontext_tools.deployed import EXECUTION_STATUSES


def package_version() -> str:
    try:
        return version("kontext-pipeline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class Commands:
    """The subcommands: each gets --version; those against a deployed stack also get
    --stack, --region and --json."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._commands = parser.add_subparsers(dest="command", required=True)

    def command(self, name: str, help_text: str) -> argparse.ArgumentParser:
        sub = self._commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--version", action="version", version=f"kontext-pipeline {package_version()}"
        )
        return sub

    def deployed(self, name: str, help_text: str) -> argparse.ArgumentParser:
        sub = self.command(name, help_text)
        sub.add_argument(
            "--stack", help=f"stack name (default: samconfig.toml, then {DEFAULT_STACK})"
        )
        sub.add_argument(
            "--region", help="AWS region (default: AWS_REGION, then your AWS configuration)"
        )
        sub.add_argument("--json", action="store_true", help="one JSON document on stdout")
        return sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kontext-pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = Commands(parser)
    add_job_commands(commands)
    add_stack_commands(commands)
    local = add_local_command(commands)
    add_scale_commands(commands, local)
    # Listed for --help; its arguments go to the emulator's own parser (see main).
    commands.command(
        "emulator", "run the model-queue emulator alone (emulator --help for its options)"
    )
    return parser


def add_job_commands(commands: Commands) -> None:
    """`edit`, `status` and `results`: one job in a deployed stack."""
    edit = commands.deployed("edit", "upload an image to a deployed stack and follow the job")
    edit.add_argument("image", help="image file to edit")
    add_option_arguments(edit)
    edit.add_argument("--key", help="object key (default: <InputPrefix><random>-<file name>)")
    edit.add_argument("--out", help="download the outputs and write index.html into this folder")
    edit.add_argument("--no-wait", action="store_true", help="upload and return")
    edit.add_argument("--timeout", type=float, default=1800.0, help="give up after (1800 s)")
    edit.add_argument(
        "--api",
        metavar="INTAKE_URL",
        help="edit through the stack's HTTP intake (IntakeUrl) instead of S3: no AWS "
        "credentials needed",
    )
    edit.add_argument(
        "--api-key", help="with --api: the key (default: $KONTEXT_API_KEY)", metavar="kp_..."
    )
    edit.set_defaults(run=run_edit_here_or_by_api)

    status = commands.deployed("status", "show a job's state and history")
    status.add_argument("key", help="the uploaded object's key")
    status.set_defaults(run=run_status)

    results = commands.deployed("results", "download a finished job's outputs, with index.html")
    results.add_argument("key", help="the uploaded object's key")
    results.add_argument("--out", default="results", help="folder (results)")
    results.set_defaults(run=run_results)


def add_stack_commands(commands: Commands) -> None:
    """`jobs`, `redrive`, `put-key` and `teardown`: the deployed stack as a whole."""
    jobs = commands.deployed(
        "jobs", "list recent jobs: key, status, reason, request id, time, cost"
    )
    jobs.add_argument("--status", choices=EXECUTION_STATUSES, type=str.upper)
    jobs.add_argument("--since", help="only jobs started since: 30m, 2h, 1d or an ISO time")
    jobs.add_argument("--limit", type=int, default=20, help="at most this many, newest first (20)")
    jobs.set_defaults(run=run_jobs)

    commands.deployed(
        "redrive", "replay the uploads the trigger failed on (its dead-letter queue)"
    ).set_defaults(run=run_redrive)
    commands.deployed(
        "put-key", "store the model's API key (FAL_KEY or asked for) in the stack's secret"
    ).set_defaults(run=run_put_key)
    teardown = commands.deployed(
        "teardown", "delete the stack, and the bucket unless --keep-bucket"
    )
    teardown.add_argument("--keep-bucket", action="store_true")
    teardown.set_defaults(run=run_teardown)


def add_local_command(commands: Commands) -> argparse.ArgumentParser:
    local = commands.command(
        "local", "run the whole pipeline on this machine (moto + model emulator)"
    )
    local.add_argument(
        "--image",
        action="append",
        help="image file to upload, or a folder of them; repeat for a burst (results under "
        "--out/<image name>/)",
    )
    add_option_arguments(local, prompt_required=False)  # --serve takes its prompts by HTTP
    local.add_argument(
        "--out", default="demo-output", help="folder for outputs, index.html and logs (demo-output)"
    )
    local.add_argument(
        "--model-seconds", type=float, default=1.0, help="emulated model run time (1.0)"
    )
    local.add_argument(
        "--queue-seconds", type=float, default=0.3, help="emulated time in the queue (0.3)"
    )
    local.add_argument(
        "--concurrency",
        type=int,
        help="requests the emulated model runs at once, as fal limits them per key (2 for a "
        "new account); the rest wait in its queue (default: no limit)",
    )
    local.add_argument("--timeout", type=float, default=180.0, help="give up after (180 s)")
    local.add_argument(
        "--parameter-overrides",
        nargs="+",
        metavar="Name=Value",
        help="template parameters for the local stack, as sam deploy takes them",
    )
    add_callback_secret_argument(local)
    local.add_argument("--json", action="store_true", help="one JSON document on stdout")
    add_serve_argument(local)
    local.set_defaults(run=run_local_or_serve)
    return local


def run_edit_here_or_by_api(args: argparse.Namespace) -> int:
    """`edit --api URL` goes through the HTTP intake; `edit` alone uploads to S3."""
    return run_edit_api(args) if args.api else run_edit(args)


def add_serve_argument(local: argparse.ArgumentParser) -> None:
    local.add_argument(
        "--serve",
        action="store_true",
        help="keep the stack up until Ctrl-C and open its HTTP intake (prints the URL and an "
        "API key; with --json one line: intake_url, api_key)",
    )


def run_local_or_serve(args: argparse.Namespace) -> int:
    """`local --serve` keeps a stack up for callers; `local --image ...` runs images."""
    return run_serve(args) if args.serve else run_local(args)


def add_callback_secret_argument(local: argparse.ArgumentParser) -> None:
    local.add_argument(
        "--callback-secret",
        default=os.environ.get("KONTEXT_CALLBACK_SECRET") or None,
        metavar="whsec_...",
        help="the secret that signs per-job callbacks, for a receiver set up beforehand "
        "(default: $KONTEXT_CALLBACK_SECRET, else the stack's own, printed before the upload)",
    )


def add_option_arguments(parser: argparse.ArgumentParser, *, prompt_required: bool = True) -> None:
    """The model's options, as flags; validated by the pipeline's own rules before upload."""
    parser.add_argument("--prompt", required=prompt_required, help="what to change in the image")
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    parser.add_argument("--num-images", type=int, help="1 to 4")
    # The metadata contract takes `jpg` for `jpeg`, and so does the command.
    parser.add_argument("--output-format", choices=(*OUTPUT_FORMATS, "jpg"), help="jpeg or png")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--guidance-scale", type=float, help="1 to 20")
    parser.add_argument("--safety-tolerance", choices=SAFETY_TOLERANCES)
    parser.add_argument("--enhance-prompt", action="store_true", default=None)
    parser.add_argument(
        "--sync-mode",
        action="store_true",
        default=None,
        help="the model returns outputs inline (data: URIs) instead of hosted URLs",
    )
    parser.add_argument(
        "--metadata",
        action="append",
        metavar="NAME=VALUE",
        help="more user metadata for the upload, repeatable (e.g. callback-url=https://...)",
    )


def add_scale_commands(commands: Commands, local: argparse.ArgumentParser) -> None:
    """`backfill`, `callback-secret` and `local --backfill` (README, "At scale and on
    budget")."""
    local.add_argument(
        "--backfill",
        action="store_true",
        help="put the images in the bucket as if already there (no upload event) and run "
        "the stack's backfill over them",
    )
    local.add_argument(
        "--max-concurrency", type=int, help="with --backfill: objects started at once"
    )
    backfill = commands.deployed(
        "backfill", "edit the images already under a prefix, each once (BackfillStateMachine)"
    )
    add_backfill_arguments(backfill)
    backfill.set_defaults(run=run_backfill)
    commands.deployed(
        "callback-secret", "show the secret that signs per-job callbacks (whsec_...)"
    ).set_defaults(run=run_callback_secret)
    api_key = commands.deployed(
        "api-key", "make (shown once), list or revoke the keys that may call the HTTP intake"
    )
    api_key.add_argument("action", choices=("create", "list", "revoke"))
    api_key.add_argument("name", nargs="?", help="the key's name (create, revoke)")
    api_key.add_argument(
        "--daily-images", type=int, help="create: the key's own cap on images a UTC day"
    )
    api_key.set_defaults(run=run_api_key)


def add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", required=True, help="key prefix under InputPrefix")
    parser.add_argument("--prompt", help="prompt for every object (default: each one's own)")
    parser.add_argument("--num-images", type=int, help="1 to 4, for every object")
    parser.add_argument("--output-format", choices=(*OUTPUT_FORMATS, "jpg"))
    parser.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    parser.add_argument(
        "--max-concurrency", type=int, help="objects at once (default: BackfillMaxConcurrency)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count the objects and the model's cost only"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after (3600 s)")
