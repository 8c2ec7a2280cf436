"""How long things take: the queue wait, a run (with its spread), fal's per-key concurrency,
the hang of a timeout fault and the webhook retry schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass

# fal retries a webhook 10 times over 2 hours; doubling from ~7 s spans that (7 s ... 1 h).
WEBHOOK_RETRY_DELAYS: tuple[float, ...] = tuple(7200 / 1023 * 2**attempt for attempt in range(10))


@dataclass(frozen=True)
class EmulatorTiming:
    queue_seconds: float = 0.2
    run_seconds: float = 0.5
    # A real model's run time varies; each request's is drawn from run_seconds ± this
    # fraction (0: every run takes exactly run_seconds).
    run_spread: float = 0.0
    # fal runs only a few requests per key at once (2 for a new account, up to ~40); the
    # rest wait IN_QUEUE, in order. None: every request starts after queue_seconds.
    concurrency: int | None = None
    # How long a submit-timeout or status-timeout fault holds its answer.
    hang_seconds: float = 3.0
    # How late a webhook-late webhook comes.
    webhook_late_seconds: float = 1.0
    # fal's retry schedule (2 hours) times this factor: 0.001 spans 7.2 s.
    webhook_time_scale: float = 0.001
    webhook_retries: int = len(WEBHOOK_RETRY_DELAYS)

    def draw_run_seconds(self, rng: random.Random) -> float:
        return self.run_seconds * (1 + rng.uniform(-self.run_spread, self.run_spread))

    def webhook_retry_delay(self, attempt: int) -> float:
        """Seconds before delivery attempt `attempt + 1`, on fal's schedule, scaled."""
        return WEBHOOK_RETRY_DELAYS[attempt] * self.webhook_time_scale
