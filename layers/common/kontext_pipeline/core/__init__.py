"""Core: what every room shares and nothing of ours is imported into.

    models.py         the source object, the edit request, the model's job and result
    errors.py         the error contract: PipelineError classes (the ASL's error names), Reason
    config.py         settings from the environment (pydantic)
    notification.py   what a job ends with: stored outputs, the manifest, the notification
    protocols.py      the model queue and the publisher as the steps see them
    observability.py  the Powertools logger and metrics
    task_envelope.py  a task's envelope, read once
    aws_clients.py    typed boto3 clients made on first use
    secrets.py        Secrets Manager reads through the Powertools Parameters cache
    url_guards.py     what every outbound URL guard shares
    backoff.py        retry waits: full jitter under an exponential ceiling

May import: nothing outside core.
"""
