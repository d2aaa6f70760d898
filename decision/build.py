"""The only way a :class:`~decision.engine.DecisionEngine` is made.

The worker, the twin's closed loop, evaluation, replay's reference runs, the benchmarks and
training all call :func:`build_engine`, so every engine runs under guardrails that were checked
against the site it decides for, and a policy name means the same thing everywhere.
"""

from __future__ import annotations

from decision.engine import DecisionEngine
from decision.features import FeatureScale
from decision.policies import Policy, make_policy
from floor.errors import ChuteflowError
from floor.site import Site

DEFAULT_TIME_LIMIT_S = 0.05
"""Wall-clock cap of one CP-SAT projection; it only stops a stall (the solve itself is bounded
by deterministic time, see ``decision/projection.py``)."""


class PolicyError(ChuteflowError):
    """A policy name or file that cannot be served; the CLI prints it as one line."""


def build_engine(
    site: Site, policy: str | Policy, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> DecisionEngine:
    """An engine for ``site`` under ``policy`` (a built-in name, a ``.onnx`` path or a policy).

    Raises:
        GuardrailError: the site's guardrails do not fit its scenario.
        PolicyError: an unknown policy name or unreadable policy file.
    """
    site.check()
    if isinstance(policy, str):
        try:
            policy = make_policy(policy, site.physics)
        except ValueError as error:
            raise PolicyError(str(error)) from None
    return DecisionEngine(
        site.layout,
        policy,
        site.guardrails,
        FeatureScale.of(site.scenario),
        time_limit_s=time_limit_s,
    )


__all__ = ["DEFAULT_TIME_LIMIT_S", "PolicyError", "build_engine"]
