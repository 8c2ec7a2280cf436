"""The README's configuration reference, generated from the settings model.

python -m kontext_tools.settings_doc           # print the table
python -m kontext_tools.settings_doc --write   # refresh it in README.md
python -m kontext_tools.settings_doc --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kontext_pipeline.core.config import PipelineSettings

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def reference_table() -> str:
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    for name, field in PipelineSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, tuple):
            shown = ",".join(default) or "(unset)"
        elif default in (None, {}, ""):
            shown = "(unset)"
        else:
            shown = str(default)
        lines.append(f"| `{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(lines)


def with_reference(readme: str) -> str:
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md has no {START} ... {END} block")
    return f"{head}{START}\n{reference_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(reference_table())
        return 0
    current = args.readme.read_text(encoding="utf-8")
    wanted = with_reference(current)
    if args.check:
        if current != wanted:
            print(
                f"{args.readme} configuration reference is out of date: "
                "run python -m kontext_tools.settings_doc --write",
                file=sys.stderr,
            )
            return 1
        return 0
    args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
