"""AwaitWebhook (waitForTaskToken): park the job's task token until its webhook comes.

If the webhook came first, the task completes at once (jobs/webhook_rendezvous.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from kontext_pipeline.core.config import JobsTableSettings, ModelSettings
from kontext_pipeline.core.models import ModelJob, TaskEnvelope
from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous


class AwaitEnvelope(TaskEnvelope[ModelJob]):
    """The ASL adds the task token (`$$.Task.Token`) to the usual envelope."""

    task_token: str


class AwaitWebhookSettings(ModelSettings, JobsTableSettings):
    """What functions/await_webhook reads: template.yaml sets these, and only these."""


@dataclass(frozen=True)
class AwaitWebhookDeps:
    rendezvous: WebhookRendezvous


def run(task: AwaitEnvelope, deps: AwaitWebhookDeps) -> str:
    """`parked`, or how the task was completed by a webhook already there."""
    return deps.rendezvous.register_token(task.job, task.task_token)
