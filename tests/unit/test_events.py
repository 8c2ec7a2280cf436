"""events/ stays a contract library: valid JSON, each file used by a test."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EVENTS, ROOT

TESTS = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("*.py"))


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.stem)
def test_every_event_is_json_and_used(path: object) -> None:
    # Given a sample event
    event_file = EVENTS / str(getattr(path, "name", path))
    # When it is read / Then it is JSON, and some test loads it
    json.loads(event_file.read_text(encoding="utf-8"))
    assert f'"{event_file.stem}"' in TESTS, f"no test loads {event_file.name}"
