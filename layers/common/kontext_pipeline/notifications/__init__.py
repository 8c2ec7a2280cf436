"""How a job's end is told: the SNS message and event, and the upload's own callback.

    publish.py    SNS + EventBridge, once per job and status (Powertools Idempotency)
    callbacks/    the signed per-job callback to the upload's callback-url

May import: core, storage, jobs.
"""
