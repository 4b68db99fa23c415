"""How many checkpoint artifacts one attempt may create, and how often, so that no plan hits GitHub's limit.

A job can upload at most 500 artifacts (GitHub changelog 2023-12-14, "A single job can upload a maximum of
500 artifacts"), failed uploads included, and the workflow's own steps may want some of them. A plan of
1,000 tasks changes state 2,000 times and more, so uploads are rationed: the first ones go out as fast as
changes come, then a minimum interval between uploads doubles as the budget is spent, and the last few are
kept for the run's final checkpoint, which always goes out while any budget is left.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UploadBudget:
    """The ration: `per_attempt` artifacts in all, the last `final_reserve` of them only for final uploads;
    the first `free` uploads wait for nothing, then `first_interval` seconds doubling every `doubling_every`."""

    per_attempt: int = 400
    final_reserve: int = 10
    free: int = 100
    first_interval: float = 5.0
    doubling_every: int = 50

    def min_interval(self, used: int) -> float:
        """The least time between the previous upload and the next one that is not final."""
        if used < self.free:
            return 0.0
        return self.first_interval * 2 ** ((used - self.free) // self.doubling_every)

    def wait(self, used: int, since_last: float, *, final: bool) -> float | None:
        """How long an upload requested now must still wait, or None when the budget allows no more of its kind.

        `used` counts this attempt's uploads so far; `since_last` is the time since the previous one."""
        if used >= self.per_attempt:
            return None
        if final:
            return 0.0
        if used >= self.per_attempt - self.final_reserve:
            return None
        return max(0.0, self.min_interval(used) - since_last)


DEFAULT_BUDGET = UploadBudget()
