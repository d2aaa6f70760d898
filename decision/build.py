"""The only way a :class:`~decision.engine.DecisionEngine` is made.

The worker, the twin's closed loop, evaluation, replay's reference runs, the benchmarks and
training all call :func:`build_engine`, so every engine runs under guardrails that were checked
against the site it decides for, and a policy name means the same thing everywhere.
"""

from __future__ import annotations

from decision.artifacts import PolicyArtifact
from decision.engine import DecisionEngine
from decision.features import FeatureScale
from decision.policies import OnnxPolicy, Policy, make_policy
from floor.errors import ChuteflowError
from floor.site import Site

DEFAULT_TIME_LIMIT_S = 0.05
"""Wall-clock cap of one CP-SAT projection; it only stops a stall (the solve itself is bounded
by deterministic time, see ``decision/projection.py``)."""


class PolicyError(ChuteflowError):
    """A policy name or file that cannot be served; the CLI prints it as one line."""


def build_engine(
    site: Site,
    policy: str | Policy | PolicyArtifact,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    *,
    fallback: str | None = None,
    deadline_s: float | None = None,
) -> DecisionEngine:
    """An engine for ``site`` under ``policy``: a built-in name, a ``.onnx`` path, a policy, or
    a :class:`~decision.artifacts.PolicyArtifact` from the policy store (served under its
    registered name, its version the artifact's short sha256).

    Raises:
        GuardrailError: the site's guardrails do not fit its scenario.
        PolicyError: an unknown policy name or unreadable policy file, or a store artifact not
            registered for the site's scenario.

    ``fallback`` (a built-in name) and ``deadline_s`` are the live worker's: the fallback
    decides an interval whose policy fails or misses the deadline
    (:meth:`~decision.engine.DecisionEngine.decide`).
    """
    site.check()
    sha256: str | None = None
    if isinstance(policy, PolicyArtifact):
        artifact = policy
        sha256 = artifact.sha256
        scenario = site.scenario.name
        if artifact.scenarios and scenario not in artifact.scenarios:
            raise PolicyError(
                f"policy {artifact.name}@{artifact.version} is registered for scenario(s) "
                f"{', '.join(artifact.scenarios)}, not {scenario}"
            )
        try:
            policy = OnnxPolicy(
                artifact.data,
                site.physics.max_chutes_per_destination + 1,
                name=artifact.name,
                version=artifact.version,
            )
        except ValueError as error:
            raise PolicyError(str(error)) from None
    elif isinstance(policy, str):
        try:
            policy = make_policy(policy, site.physics)
        except ValueError as error:
            raise PolicyError(str(error)) from None
    backup: Policy | None = None
    if fallback is not None:
        try:
            backup = make_policy(fallback, site.physics)
        except ValueError as error:
            raise PolicyError(f"fallback: {error}") from None
    return DecisionEngine(
        site.layout,
        policy,
        site.guardrails,
        FeatureScale.of(site.scenario),
        time_limit_s=time_limit_s,
        fallback=backup,
        deadline_s=deadline_s,
        policy_sha256=sha256,
    )


__all__ = ["DEFAULT_TIME_LIMIT_S", "PolicyError", "build_engine"]
