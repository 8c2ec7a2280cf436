"""When to ask the queue again.

Every poll costs three Standard state transitions (Wait, CheckStatus, Choice). A fixed
2 s interval spends ~45 of them on a 30 s model run. A diffusion model runs a fixed
number of steps, so its run time is fairly steady: this plan sleeps until the early edge
of a typical run, polls every `min_seconds` through the typical window, and past it backs
off in proportion to how late the run is. A 30 s run then costs three or four polls and
is seen about `min_seconds / 2` after it ends. Step Functions Wait takes whole seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

# A run seldom takes less than 90% or more than 110% of the typical time.
EARLY_EDGE = 0.9
LATE_EDGE = 1.1


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
        return self._clamp(self.expected_model_seconds * (EARLY_EDGE + 0.5 * ahead))

    def while_running(self, running_since: datetime, now: datetime) -> int:
        elapsed = (now - running_since).total_seconds()
        until_early_edge = self.expected_model_seconds * EARLY_EDGE - elapsed
        if until_early_edge > self.min_seconds:
            return self._clamp(until_early_edge)
        overdue = elapsed - self.expected_model_seconds * LATE_EDGE
        if overdue <= 0:
            return self._clamp(self.min_seconds)  # inside the typical window
        # Later than typical (a slow or stuck run): the later it is, the less a few
        # seconds more matter, so wait half as long again as it is overdue.
        return self._clamp(max(self.min_seconds, overdue / 2))

    def _clamp(self, seconds: float) -> int:
        bounded = min(self.max_seconds, max(self.min_seconds, seconds))
        return max(1, math.ceil(bounded))
