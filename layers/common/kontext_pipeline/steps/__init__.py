"""The pipeline's steps, one module per state-machine task, named as functions/* are:

    start_edit       S3 event  -> one execution per object version (deterministic name)
    submit_edit      JobStart  -> ModelJob   (inspect, validate, presign, submit once)
    check_status     ModelJob  -> ModelJob   (poll, inline while due soon; plan the wait; limits)
    collect_outputs  ModelJob  -> Notification (copy outputs, manifest, publish success)
    report_failure   any state + error -> Notification (cancel if needed, publish failure)

(await_webhook is webhook_rendezvous.py; receive_webhook is webhook_signatures.py, which
checks the webhook, and webhook_rendezvous.py, which hands it to the waiting execution;
start_backfill_edit is backfill.py, deliver_callback is callbacks/.) Each step takes the
clients and the small frozen policy it needs; functions/*/app.py only wires them up from
the Runtime. Nothing is imported here, so a function loads only its own step.
"""
