"""How the command ends: an exit code, and for a refusal one line that says why.

Exit codes: 0 success, 1 the job failed, 2 bad usage, input or setup, 3 gave up waiting
(the job may still finish), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    """A one-line message for the person at the terminal, and the exit code that goes with it."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
