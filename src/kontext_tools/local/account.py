"""The emulated AWS account of a local run: its id and region (its clients:
kontext_tools.session_clients, on a session in REGION; its credentials:
iam_enforcement.py)."""

from __future__ import annotations

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
