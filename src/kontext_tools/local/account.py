"""The emulated AWS account of a local run: its id, region and credentials (its clients:
kontext_tools.session_clients, on a session in REGION)."""

from __future__ import annotations

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Credentials of the emulated account: moto accepts any, real AWS none of these.
EMULATED_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
