"""The `kontext-pipeline` command: `main` reads the command line (parser.py) and runs the
command's module; every refusal is one line on stderr and an exit code (exits.py).

    edit.py      edit, status, results: one job in a deployed stack; edit_api.py: edit --api
    stack.py     jobs, redrive, callback-secret, put-key, teardown: the stack as a whole
    backfill.py  backfill: what is already in the bucket
    api_keys.py  api-key: who may call the HTTP intake
    local.py     local: the whole pipeline on this machine; burst.py: several images;
                 serve.py: local --serve, the HTTP intake kept up for callers
    arguments.py checks of what was typed, before anything is uploaded
    aws.py       the AWS session, the stack, and one line per AWS problem
    output.py    what is printed: results on stdout, progress on stderr
    results.py   a job's results folder and its index.html
"""

from __future__ import annotations

import os
import sys

from kontext_pipeline.core.errors import PipelineError

from kontext_tools.cli.aws import describe_aws_error
from kontext_tools.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE, CliError
from kontext_tools.cli.parser import build_parser

__all__ = ["entry_point", "main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:
        return run_emulator(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except PipelineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = describe_aws_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


def run_emulator(argv: list[str]) -> int:
    """`emulator ...`: its arguments go to the emulator's own parser."""
    from kontext_tools.emulator import main as emulator_main  # noqa: PLC0415

    return int(emulator_main(list(argv)))


def entry_point() -> int:
    """The `kontext-pipeline` command.

    After Ctrl-C the command has already stopped everything it started; what is left is
    the interpreter freeing the emulated AWS's state object by object, about a second the
    person pressing Ctrl-C should not wait for, so the process ends without that teardown.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
