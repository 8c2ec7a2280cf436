"""S3: the uploaded object and the outputs written back.

    scope.py           where the pipeline listens and writes (the recursion guard)
    metadata.py        S3 metadata and sidecar -> validated prompt and options
    inspection.py      the uploaded object: type, size, sidecar prompt, presign or data: URI
    output_origins.py  where outputs may be fetched from (every redirect checked)
    output_copy.py     the streamed copy of outputs into S3, lineage, the manifest
    s3_errors.py       S3's errors as what they mean for a job (missing, denied, passing)

May import: core.
"""
