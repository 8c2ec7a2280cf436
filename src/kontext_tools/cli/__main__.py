"""`python -m kontext_tools.cli`: the `kontext-pipeline` command."""

from kontext_tools.cli import entry_point

raise SystemExit(entry_point())
