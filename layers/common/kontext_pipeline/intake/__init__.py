"""The HTTP front door (functions/intake): apps start edits without an AWS SDK. It never
calls the model: it puts the image into the bucket under the input prefix, with the
metadata the trigger reads, and the upload runs as any other.

    api_keys.py      who may call: keys made by the CLI, kept only as hashes
    problems.py      every refusal as an RFC 9457 problem document
    requests.py      the request body, checked by the trigger's own rules
    image_fetch.py   an image_url fetched with the callbacks' guards, size and type checked
    edits.py         an edit made (fetched or presigned upload) and its status read back
    key_caps.py      a key's own daily image cap
    routes.py        the routes and who is calling
    idempotent_create.py   a POST with an Idempotency-Key, made once (Powertools)

May import: notifications, jobs, storage, core.
"""
