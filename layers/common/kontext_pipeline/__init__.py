"""kontext-pipeline: S3 upload -> FLUX.1 Kontext [max] on fal's queue -> outputs in S3 + SNS."""

__version__ = "0.1.0"
