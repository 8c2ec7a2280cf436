"""`--metadata NAME=VALUE` on `edit` and `local`: any user metadata, checked before upload."""

from __future__ import annotations

import pytest

from kontext_tools.cli.arguments import parse_metadata
from kontext_tools.cli.exits import CliError
from kontext_tools.cli.parser import build_parser


def test_metadata_pairs_are_read_and_repeatable() -> None:
    # Given two --metadata options, one value holding '='
    args = build_parser().parse_args(
        [
            "edit",
            "a.png",
            "--prompt",
            "p",
            "--metadata",
            "Callback-URL=https://h/x?a=b",
            "--metadata",
            "team=ops",
        ]
    )
    # When they are parsed / Then each is a metadata entry, names lower-cased
    assert parse_metadata(args.metadata) == {"callback-url": "https://h/x?a=b", "team": "ops"}
    assert parse_metadata(None) == {}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("no-equals-sign", "NAME=VALUE"),
        ("=value", "NAME=VALUE"),
        ("bad name=v", "NAME=VALUE"),
        ("prompt=hello", "use --prompt"),
        ("num-images=9", "use --num-images"),
    ],
)
def test_malformed_or_clashing_metadata_is_refused_before_upload(item: str, message: str) -> None:
    # Given a pair that is not NAME=VALUE, or names what a flag of its own sets
    # When parsed / Then it is refused with the fix
    with pytest.raises(CliError, match=message):
        parse_metadata([item])
