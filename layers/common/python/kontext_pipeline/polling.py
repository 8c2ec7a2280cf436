"""When to ask the queue again.

Every poll costs three Standard state transitions (Wait, CheckStatus, Choice). A fixed
2 s interval spends ~45 of them on a 30 s model run; waiting out the model's typical run
time first and tightening near the expected end spends a handful, at a small latency cost
bounded by `poll_min_seconds`. Step Functions Wait takes whole seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PollPlan:
    min_seconds: float
    max_seconds: float
    expected_model_seconds: float

    def after_submit(self, queue_position: int | None) -> int:
        return self.while_queued(queue_position)

    def while_queued(self, queue_position: int | None) -> int:
        # Each request ahead holds a slot for about one model run; we cannot see the
        # account's concurrency, so assume the queue moves one position per half run.
        ahead = max(0, queue_position or 0)
        return self._clamp(self.expected_model_seconds * (1 + 0.5 * ahead))

    def while_running(
        self, running_since: datetime, now: datetime, polls_while_running: int
    ) -> int:
        remaining = self.expected_model_seconds - (now - running_since).total_seconds()
        if remaining > self.min_seconds:
            return self._clamp(remaining)
        # Past the typical run time: back off gently from the minimum, poll by poll.
        return self._clamp(self.min_seconds * (1.5 ** max(0, polls_while_running)))

    def _clamp(self, seconds: float) -> int:
        bounded = min(self.max_seconds, max(self.min_seconds, seconds))
        return max(1, math.ceil(bounded))
