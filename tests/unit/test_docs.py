"""Docs stay true: the README's options, the settings model and the template agree."""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from kontext_pipeline.core.config import PipelineSettings

from kontext_tools.cli.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from kontext_tools.cli.parser import build_parser
from kontext_tools.local.stack import load_template
from kontext_tools.settings_doc import with_reference
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
TEMPLATE = load_template(ROOT / "template.yaml")
SETTINGS = {name.upper() for name in PipelineSettings.model_fields}


def test_the_configuration_reference_is_generated_from_the_settings_model() -> None:
    # Given the README / When its configuration reference is generated again
    # Then nothing changes
    assert with_reference(README) == README, "run python -m kontext_tools.settings_doc --write"


def test_every_variable_the_readme_names_is_a_setting() -> None:
    # Given every `UPPER_SNAKE` name in backticks that is not an AWS or Powertools name
    named = set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`", README))
    named = {name for name in named if not name.startswith(("POWERTOOLS_", "AWS_"))}
    # When they are compared with the settings model's fields
    # Then each is a field of the settings model
    assert named - SETTINGS == set()


def test_every_setting_is_in_the_readme() -> None:
    # Given every field of the settings model, as its variable / When the README is read
    # Then each is named there
    assert {name for name in SETTINGS if f"`{name}`" not in README} == set()


def test_every_template_parameter_is_documented_and_every_documented_one_exists() -> None:
    # Given the template's parameters
    parameters = set(TEMPLATE["Parameters"])
    # When the README's Configuration section is read for `ParameterNames`
    section = README[README.index("## Configuration") : README.index("### Configuration reference")]
    documented = set(re.findall(r"`([A-Z][a-zA-Z0-9]+)`", section))
    # Then the two are the same set
    assert documented == parameters


def test_the_template_sets_only_variables_the_settings_model_reads() -> None:
    # Given every environment variable the template sets (globally and per function)
    variables = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    for resource in TEMPLATE["Resources"].values():
        variables |= set(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    # When Powertools' own are left out / Then each is a field of the settings model
    assert {name for name in variables if not name.startswith("POWERTOOLS_")} <= SETTINGS


# --- links ------------------------------------------------------------------------------

MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path named in prose or a comment: from a top-level folder of the project, with a file
# extension, or any path that climbs out of its folder.
NAMED_PATH = re.compile(
    r"(?<![\w/.:-])("
    r"(?:\.\./)+[\w./-]*\w"
    r"|(?:docs|events|benchmarks|samples|statemachine|tests|functions|layers|src)/[\w./-]*"
    r"\.(?:md|py|json|ya?ml|toml|txt|jpe?g|png|sh)"
    r")(?![\w/])"
)
# A document named on its own, as code: `decisions.md`. (A bare name in prose, or a path
# under no folder of this project, may be another project's file, such as a cited spec.)
NAMED_DOCUMENT = re.compile(r"`([\w.-]+\.md)`")
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".json", ".cfg", ".txt", ""}


def project_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    return [
        ROOT / name
        for name in listed
        if (ROOT / name).is_file() and (ROOT / name).suffix in TEXT_SUFFIXES
    ]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Every link or named path in a file that leads to no file, or out of the project."""
    text = path.read_text(encoding="utf-8", errors="replace")
    named = NAMED_PATH.findall(text) + NAMED_DOCUMENT.findall(text)
    targets = {(target, path.parent) for target in named}
    if path.suffix == ".md":
        for target in MARKDOWN_LINK.findall(text):
            if not re.match(r"^(?:[a-z]+:|#)", target):
                targets.add((target.split("#", 1)[0], path.parent))
    broken = []
    for target, base in sorted(targets):
        # Project paths are written from the project's root; relative ones from the file.
        candidates = [(base / target).resolve(), (root / target).resolve()]
        inside = [candidate for candidate in candidates if candidate.is_relative_to(root)]
        if not inside:
            broken.append(f"{target} (outside the project)")
        elif not any(candidate.exists() for candidate in inside):
            broken.append(target)
    return broken


def test_no_file_links_to_a_missing_file_or_out_of_the_project() -> None:
    # Given every text file of the project (docs, code comments, configuration)
    # When each link and named path is resolved
    # (this file's own examples below are broken on purpose)
    checked = [path for path in project_files() if path != Path(__file__).resolve()]
    problems = {
        str(path.relative_to(ROOT)): found for path in checked if (found := broken_links(path))
    }
    # Then each leads to a file inside the project
    assert problems == {}


def test_the_link_check_finds_a_missing_file_and_a_path_out_of_the_project(
    tmp_path: Path,
) -> None:
    # Given a project with one doc, and a note with broken and good links
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "decisions.md").write_text("# Decisions")
    note = project / "docs" / "note.md"
    note.write_text(
        "See [gone](missing.md), ../../shared/design/x.md, docs/decisions.md, "
        "[decisions](decisions.md), `architecture.md` and a spec's own file, spec.md.",
        encoding="utf-8",
    )
    # When checked / Then both bad ones are reported and the good ones are not
    assert broken_links(note, root=project) == [
        "../../shared/design/x.md (outside the project)",
        "architecture.md",
        "missing.md",
    ]


# --- the README and the command agree ---------------------------------------------------


def readme_command_lines() -> list[list[str]]:
    """Every `kontext-pipeline ...` command in the README's shell blocks, as argv."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].rsplit("/", 1)[-1] == "kontext-pipeline":
                commands.append(words[1:])
    return commands


def test_every_command_the_readme_shows_is_one_the_cli_takes() -> None:
    # Given each command line in the README
    commands = readme_command_lines()
    assert len(commands) >= 8
    for argv in commands:
        # When the command's parser reads it / Then it is accepted as written
        if argv[0] == "emulator":
            from kontext_tools.emulator import main as emulator_main

            help_text = io.StringIO()
            with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
                emulator_main(["--help"])
            unknown = [word for word in argv[1:] if word.startswith("--")]
            assert [word for word in unknown if word not in help_text.getvalue()] == []
            continue
        if argv == ["--version"]:
            with pytest.raises(SystemExit) as stopped:
                build_parser().parse_args(argv)
            assert stopped.value.code == 0
        else:  # a usage error exits here, failing the test with argparse's message
            build_parser().parse_args(argv)


def test_the_readme_lists_the_exit_codes_the_command_uses() -> None:
    # Given the README's table of exit codes
    table = README[README.index("| exit code | meaning |") :].split("\n\n", 1)[0]
    # When its codes are read
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    # Then they are the command's exit codes, no more and no fewer
    assert listed == {EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_INTERRUPTED}


def test_the_bench_time_is_the_same_in_the_readme_and_make_help() -> None:
    # Given the Makefile's help for bench and the README's line about it
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    # When the minutes each gives are read
    in_make = re.search(r"^bench:.*about (\d+) minutes", makefile, re.MULTILINE)
    in_readme = re.search(r"`make bench` \(about (\d+) minutes", README)
    # Then they agree
    assert in_make is not None
    assert in_readme is not None
    assert in_make.group(1) == in_readme.group(1)


def test_the_security_notes_say_what_a_webhook_must_pass_as_the_code_checks_it() -> None:
    from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous
    from kontext_pipeline.model_queue import webhooks as webhook_signatures

    # Given docs/security.md's webhook section and the code that checks webhooks
    notes = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    section = notes[notes.index("## The webhook endpoint") : notes.index("## Per-job callbacks")]
    # Then the limits it names are the code's, and each check it lists is in the code
    old = webhook_signatures.SIGNATURE_TOLERANCE_SECONDS
    ahead = webhook_signatures.FUTURE_TOLERANCE_SECONDS
    assert f"at most {old} s old and at most {ahead} s ahead" in section
    assert "the four `x-fal-webhook-*` headers" in section
    assert all(name.startswith("x-fal-webhook-") for name in webhook_signatures.HEADERS)
    assert len(webhook_signatures.HEADERS) == 4
    recorded = inspect.getsource(WebhookRendezvous.record_webhook)
    assert "attribute_exists(expected) AND attribute_not_exists(webhook_status)" in recorded
    assert '"duplicate"' in recorded
    assert "not submitted by this stack" in recorded
    verified = inspect.getsource(webhook_signatures.verify_webhook)
    assert "FalUserId" in verified
    assert "FalUserId" in section
