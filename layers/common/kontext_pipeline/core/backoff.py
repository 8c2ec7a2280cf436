"""How long to wait before trying again: full jitter under an exponential ceiling (the
AWS Architecture Blog's "Exponential Backoff and Jitter"), for the model's queue calls
and the callbacks' deliveries alike."""

from __future__ import annotations

import random


def full_jitter(retries_so_far: int, *, base: float, cap: float) -> float:
    """A wait drawn from [0, min(cap, base x 2^retries_so_far)]."""
    ceiling = min(cap, base * 2**retries_so_far)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
