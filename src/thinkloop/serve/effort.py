"""``reasoning_effort`` as the server reads it: the one effort table lives in :mod:`thinkloop.strategies.effort`,
which models take the parameter themselves in :mod:`thinkloop.backends.profiles`.

Re-exported here so the server's modules (and code that imported them from here) keep one name for it.
"""

from __future__ import annotations

from thinkloop.backends.profiles import model_takes_effort
from thinkloop.strategies.effort import EFFORT_TABLE, EFFORTS, PASSED_THROUGH, EffortPlan, plan_for

__all__ = ["EFFORTS", "EFFORT_TABLE", "PASSED_THROUGH", "EffortPlan", "model_takes_effort", "plan_for"]
