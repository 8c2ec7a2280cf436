"""When to ask the queue again, and whether to keep asking inside one CheckStatus.

Every trip round the state machine's poll loop costs three Standard state transitions
(Wait, CheckStatus, Choice): $0.075 per 1,000 jobs. A second of a small poller asking the
queue itself costs far less (a 256 MB Lambda second is $0.0033 per 1,000), so the plan
splits the work:

- **Running.** A diffusion model runs a fixed number of steps, so its run time is fairly
  steady. The Wait state sleeps (free) until just before the early edge of a typical run,
  then CheckStatus asks every `inline_interval_seconds` (0.1 s, as fal's Python client
  does; its JS client asks every 0.5 s) until the run ends, for at most
  `inline_budget_seconds`. A run later than that goes back to the Wait loop, backing off
  in proportion to how late it is.
  The typical run is what the model took recently (run_times.py), `ExpectedModelSeconds`
  only the first guess.
- **Unknown run time.** With nothing recorded for the model (a new stack, or a record
  past its TTL), the configured guess says little (the template's 20 s against a 5 s or a
  50 s model). The first look comes one second after the submit, and that first
  CheckStatus watches through the likely range, `first_watch_seconds` (40 s) of it,
  answering the moment the run ends; a run longer than that goes on in the Wait loop,
  backing off from the end of the watch. A watch costs at most 40 s of a 256 MB Lambda
  ($0.00013), paid only by jobs that start while the run time is unknown: the first job
  teaches it (run_times.py). docs/decisions.md, "Polling plan", has the figures.
- **Queued.** fal runs a few requests per key at once and queues the rest; the queue moves
  one position per `seconds_per_position` (observed between two polls, else a typical run:
  the account may run one request at a time). The plan waits half the expected time to
  the front, so each look halves the distance, capped at `queued_max_seconds` once the
  pace has been seen (at `max_seconds` before): a long queue costs a few looks, not one
  per `PollMaxSeconds`. Near the front CheckStatus asks
  inline. A queue position is never a reason to sleep a whole extra run.

Inside CheckStatus the looks are read from the queue's status stream where it offers
one, else asked for every `inline_interval_seconds` (status_looks.py).

Step Functions Wait takes whole seconds; a wait is rounded down so CheckStatus starts
before the moment it is aimed at, never after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# A run seldom takes less than 90% or more than 110% of the typical time.
EARLY_EDGE = 0.9
LATE_EDGE = 1.1
# The first look at a request whose model's run time is unknown: the shortest Wait.
FIRST_LOOK_SECONDS = 1


@dataclass(frozen=True)
class PollPlan:
    min_seconds: float
    max_seconds: float
    expected_model_seconds: float
    inline_budget_seconds: float = 10.0
    inline_interval_seconds: float = 0.1
    queued_max_seconds: float = 300.0
    # How long the first CheckStatus of a job watches when the run time is unknown: the
    # likely range of an image model's run, within the function's 60 s timeout.
    first_watch_seconds: float = 40.0
    # False while `expected_model_seconds` is only the configured guess: nothing recorded
    # yet says how long this model runs, so the plan asks early rather than sleep on it.
    typical_known: bool = False

    def with_typical_run(self, seconds: float | None) -> PollPlan:
        """The same plan around what the model recently took (None: keep the guess)."""
        if not seconds or seconds <= 0:
            return self
        return replace(self, expected_model_seconds=seconds, typical_known=True)

    # --- seconds until the next look is worth it -----------------------------------------

    def until_worth_asking_queued(
        self, queue_position: int | None, seconds_per_position: float | None = None
    ) -> float:
        """Half the expected time until the request starts (it then still has to run)."""
        per_position = seconds_per_position or self.expected_model_seconds
        ahead = max(0, queue_position or 0)
        return 0.5 * (ahead + 1) * per_position

    def until_worth_asking_running(self, running_for: float) -> float:
        """0 inside the typical window (ask now); before it, until its early edge; past it,
        half as long again as the run is overdue (a slow or stuck run)."""
        until_early_edge = self.expected_model_seconds * EARLY_EDGE - running_for
        late_from = self.expected_model_seconds * LATE_EDGE
        if not self.typical_known:
            # A guess may be far off either way (5 s runs against the default 20 s): ask
            # from the start, and count lateness only past the guess and the first watch.
            until_early_edge = 0.0
            late_from = max(late_from, self.first_watch_seconds)
        if until_early_edge > 0:
            return until_early_edge
        overdue = running_for - late_from
        return 0.0 if overdue <= 0 else max(self.min_seconds, overdue / 2)

    # --- what CheckStatus does with it -----------------------------------------------------

    def watches_first(self, polls_so_far: int) -> bool:
        """Whether this CheckStatus is a job's first look at a model of unknown run time
        (and asking inline is on at all): it then watches through the likely range."""
        return not self.typical_known and polls_so_far == 0 and self.inline_budget_seconds > 0

    def inline_budget(self, first_watch: bool) -> float:
        """Seconds one CheckStatus may keep asking: the first watch, or the usual budget."""
        if first_watch:
            return max(self.inline_budget_seconds, self.first_watch_seconds)
        return self.inline_budget_seconds

    def inline_pause(self, until_worth_asking: float, first_watch: bool) -> float:
        """How long to sleep before asking again: one interval while watching the unknown
        (a queue position says nothing yet of a pace), else until the answer is due."""
        if first_watch:
            return self.inline_interval_seconds
        return max(self.inline_interval_seconds, until_worth_asking)

    def keep_asking_inline(self, until_worth_asking: float, inline_left: float) -> bool:
        """Ask again inside this invocation when the answer is due before its budget ends."""
        return until_worth_asking <= inline_left - self.inline_interval_seconds

    def loop_wait(self, until_worth_asking: float, *, queued: bool, pace_known: bool = True) -> int:
        """Whole seconds for the Wait state, rounded down so the next look is not late.

        A queue's long waits are trusted only once both the model's run time and the
        queue's pace are known: a guess (20 s against a 0.5 s model, or one request at a
        time on an account that runs 40) must not put a request to sleep for minutes."""
        long_queue = queued and self.typical_known and pace_known
        ceiling = max(self.max_seconds, self.queued_max_seconds) if long_queue else self.max_seconds
        bounded = min(ceiling, max(self.min_seconds, until_worth_asking))
        return max(1, math.floor(bounded))

    def after_submit(self, queue_position: int | None) -> int:
        """The first wait: to the early edge of a run for a request that starts at once; the
        shortest wait when the model's run time is unknown (its first look watches)."""
        if queue_position:
            until = self.until_worth_asking_queued(queue_position)
            return self.loop_wait(until, queued=True, pace_known=False)
        if not self.typical_known and self.inline_budget_seconds > 0:
            return FIRST_LOOK_SECONDS
        return self.loop_wait(self.until_worth_asking_running(0.0), queued=False)
