"""The pipeline's steps, one module per function (functions/<name>/app.py), one shape:

    run(input, deps) -> output

where `input` is what the function is handed (a task's envelope or its job, an S3 event's
records, a listed object, a webhook request, an event's detail) and `deps` is the step's
own frozen bundle, `<Step>Deps`, of the clients and the few settings it uses; the handler
builds it from the Runtime and keeps only the metrics and the answer's shape.

    start_edit           S3 records        -> one execution per object version
    start_backfill_edit  a listed object   -> its execution, as the trigger would start it
    submit_edit          JobStart          -> ModelJob (inspect, validate, submit once)
    check_status         ModelJob          -> ModelJob (look inline while due soon; plan)
    await_webhook        job + task token  -> parked, or completed by an early webhook
    receive_webhook      webhook request   -> verified webhook, handed to the waiting task
    collect_outputs      task(ModelJob)    -> Notification (copy, manifest, publish)
    report_failure       task(any + error) -> Notification (cancel, free, publish)
    deliver_callback     outcome event     -> the recorded notification, signed, POSTed

Steps import every room below them and no step imports another, but for the one starter
the trigger and the backfill share (start_edit.JobStarter). Nothing is imported here, so
a function loads only its own step.
"""
