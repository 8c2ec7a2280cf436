"""What each function loads at cold start: the heavy imports stay where they are used.

cryptography (webhook signatures), Powertools Idempotency (the notifier) and the status
stream's client are each imported only by the functions that use them; a type imported
for an annotation must not drag one into every function (the jobs store once did).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = {
    "cryptography": "cryptography",
    "idempotency": "aws_lambda_powertools.utilities.idempotency",
}
# The functions that use each; every other function must not load it.
USED_BY = {
    "cryptography": {"receive_webhook", "deliver_callback"},
    "idempotency": {"collect_outputs", "report_failure"},
}
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))

LOAD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(name for name in sys.argv[2:] if name in sys.modules)))
"""


def loaded_by(function: str) -> set[str]:
    """The heavy modules a fresh interpreter holds once the function's handler is imported."""
    app = ROOT / "functions" / function / "app.py"
    answer = subprocess.run(
        [sys.executable, "-c", LOAD, str(app), *HEAVY.values()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = set(json.loads(answer.stdout.strip().splitlines()[-1]))
    return {name for name, module in HEAVY.items() if module in modules}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_loads_only_the_heavy_imports_it_uses(function: str) -> None:
    # Given a function's handler / When it is imported as Lambda's cold start imports it
    loaded = loaded_by(function)
    # Then it holds no heavy module that another function needs and it does not
    assert {name for name in loaded if function not in USED_BY[name]} == set()
