"""`api-key create NAME | list | revoke NAME`: who may call the stack's HTTP intake. A new
key is printed once, here; the stack keeps only its hash."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from kontext_tools.api_keys import ApiKeyAdmin
from kontext_tools.cli.aws import Aws, deployed_stack, required_output
from kontext_tools.cli.exits import EXIT_OK, CliError
from kontext_tools.cli.output import emit


def run_api_key(args: argparse.Namespace) -> int:
    aws = Aws(args.region)
    stack = deployed_stack(args, aws)
    admin = ApiKeyAdmin(aws.dynamodb, required_output(stack, "JobsTableName"))
    if args.action != "list" and not args.name:
        raise CliError(f"api-key {args.action} needs a NAME")
    actions = {"list": _list_keys, "create": _create_key, "revoke": _revoke_key}
    actions[args.action](args, admin, stack.name)
    return EXIT_OK


def _list_keys(args: argparse.Namespace, admin: ApiKeyAdmin, stack: str) -> None:
    keys = admin.every_key()
    rows = [
        f"{key.name:24}  {key.key_id:12}  {_day(key.created_at)}  "
        f"{'revoked' if key.revoked else 'active':7}  {_cap(key.daily_images)}"
        for key in keys
    ]
    document = {"keys": [key.__dict__ for key in keys]}
    emit(args, document, "\n".join(rows) or f"no API keys in stack {stack}")


def _create_key(args: argparse.Namespace, admin: ApiKeyAdmin, _: str) -> None:
    if args.daily_images is not None and args.daily_images < 1:
        raise CliError("--daily-images takes 1 or more")
    api_key, secret = admin.create(args.name, args.daily_images)
    print(
        f"created API key {api_key.name!r}; it is shown this once, keep it secret", file=sys.stderr
    )
    emit(args, {"name": api_key.name, "key_id": api_key.key_id, "api_key": secret}, secret)


def _revoke_key(args: argparse.Namespace, admin: ApiKeyAdmin, _: str) -> None:
    revoked = admin.revoke(args.name)
    if not revoked:
        raise CliError(f"no active API key named {args.name!r}")
    names = ", ".join(f"{key.name} ({key.key_id})" for key in revoked)
    emit(args, {"revoked": [key.key_id for key in revoked]}, f"revoked {names}")


def _cap(daily_images: int | None) -> str:
    return "" if daily_images is None else f"{daily_images} images a day"


def _day(epoch_seconds: int) -> str:
    return f"{datetime.fromtimestamp(epoch_seconds, UTC):%Y-%m-%d %H:%M}"
