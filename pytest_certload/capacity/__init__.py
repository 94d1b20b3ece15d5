"""Capacity search: the highest rate at which a scenario's thresholds still hold, as an interval.

A threshold test answers yes or no at one rate; a capacity search answers "holds at 340/s, fails at
360/s". It starts at the marker's ``rate``, climbs geometrically (x ``factor`` per step, up to
``max_rate``) until a step fails, then bisects (geometric midpoints) between the last rate that held
and the first that failed until the two are within ``resolution`` of each other. Each step is one
short constant-arrival-rate phase of the marker's ``duration``; it *holds* when every threshold of
the scenario holds and the rate was served (at most ``max_lost`` of the due iterations dropped for
want of a VU or cut off at the graceful stop).

Noise: a step near the boundary -- every bisection step, and a ramp step whose worst threshold came
within ``margin`` of its limit -- counts only once ``confirm`` of its runs agree (at most
2 x confirm - 1 runs). A ramp step that failed clearly (beyond the margin) stops the ramp at once.
A run whose generator saturated is no verdict on the server: it is tried once more (confirm > 1),
then the search stops and says the generator, not the server, was the limit.

The budget is counted in measured phase seconds plus cool-downs, never a process's own clock, so
every pytest-xdist worker (which all see the same merged phases) takes the same decisions and runs
the same phases. Pure logic: no pytest, no engine. The runner (``Certload.capacity``) supplies the
step function, ``report/capacity.py`` renders results, :class:`Fleet` turns a rate into a fleet.
"""

from pytest_certload.capacity.fleet import (
    AGENT_HEARTBEAT_S,
    AGENT_POLL_S,
    Fleet,
    agent_heartbeats,
    agent_polls,
    agent_traffic,
    certificate_renewals,
)
from pytest_certload.capacity.plan import (
    OPTION_KEYS,
    CapacityOptionError,
    CapacityPlan,
    check_vu_headroom,
    parse_plan,
)
from pytest_certload.capacity.search import (
    STATUSES,
    CapacityNotFound,
    CapacityResult,
    StepRun,
    fmt_rate,
    search,
)
from pytest_certload.capacity.steps import judge_step, step_name, step_options, verdict_excess

__all__ = [
    "AGENT_HEARTBEAT_S",
    "AGENT_POLL_S",
    "OPTION_KEYS",
    "STATUSES",
    "CapacityNotFound",
    "CapacityOptionError",
    "CapacityPlan",
    "CapacityResult",
    "Fleet",
    "StepRun",
    "agent_heartbeats",
    "agent_polls",
    "agent_traffic",
    "certificate_renewals",
    "check_vu_headroom",
    "fmt_rate",
    "judge_step",
    "parse_plan",
    "search",
    "step_name",
    "step_options",
    "verdict_excess",
]
