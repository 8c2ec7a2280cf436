"""The README's Python API example runs as written."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, readme_example


def test_the_python_api_example_runs_and_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the example and the sample image where it looks for it, in a folder of its own
    (tmp_path / "samples").mkdir()
    shutil.copy(ROOT / "samples" / "kitchen-table.jpg", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    # When it runs
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example("Python API", "python"), "README.md", "exec"), {})
    # Then it printed the status and the files its comment promises, and wrote them
    status_line, files_line = printed.getvalue().splitlines()
    assert status_line.startswith("SUCCEEDED ")
    assert files_line == "['0.png', '1.png', 'manifest.json']"
    assert sorted(path.name for path in (tmp_path / "my-output").iterdir()) == [
        "0.png",
        "1.png",
        "manifest.json",
    ]
    # And the log file it named holds the run's logs
    assert (tmp_path / "run.log").is_file()
