"""Benchmarks: `python -m benchmarks.run [--quick] [--only NAME]` (or `make bench`)."""
