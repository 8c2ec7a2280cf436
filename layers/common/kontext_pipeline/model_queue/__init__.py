"""The model's queue (fal): how a request is submitted, watched, answered and cancelled.

    client.py        the queue client: submit, status, status stream, result, cancel
    transport.py     one call to the queue: the key on its host only, bounded retries
    answers.py       what the queue's answers mean (errors, ingress 5xx, cancel outcomes)
    poll_plan.py     when to look again (inline asks, queued waits, the first watch)
    status_looks.py  one look inside CheckStatus's window: the stream, else status calls
    webhooks.py      the model's signed webhook: signature, JWKS cache, what it says
    api_key.py       the model's API key, from the secret or the environment

May import: core.
"""
