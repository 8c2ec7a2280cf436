"""The jobs table: one DynamoDB table behind everything a job must remember.

    keys.py                the table's items: keys, kinds, expiry
    ledger.py              the paid submit, exactly once per upload
    budget.py              the spending cap: images per UTC day, requests at once
    counters.py            a count that may not pass its cap (one conditional ADD)
    run_times.py           what the model recently took
    webhook_rendezvous.py  where a waiting task's token and the model's webhook meet
    published.py           each job's notification as published (what callbacks send)

May import: core, model_queue.
"""
