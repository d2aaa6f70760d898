"""Every knob of a training run (CleanRL style: one field, one line of why); written next to
the policy it produced. Its own module so the trainer and the worst-group predictor both read
it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from decision.features import FEATURE_SETS

Algo = Literal["marl", "drmarl", "drmarl-exhaustive"]
ALGOS: tuple[Algo, ...] = ("marl", "drmarl", "drmarl-exhaustive")
CHECKPOINTS = ("worst", "rule", "gate")
GROUP_DRO_REFERENCES = ("proportional", "lookahead")


def _check_choice(what: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{what} {value!r}: use one of {', '.join(options)}")


@dataclass
class Settings:
    """Every knob of a training run; written next to the policy it produced."""

    scenario: str = "small"
    """Scenario name or YAML path."""
    algo: Algo = "drmarl"
    """marl, drmarl (predicted worst group) or drmarl-exhaustive (simulate every group)."""
    episodes: int = 300
    """Training days (the paper trains 300 episodes)."""
    train_group: int | None = None
    """marl only: the group to train on; None picks the group with the most historical days."""
    seed: int = 1
    """Seeds the network, exploration and the training days (evaluation uses other seeds)."""
    gamma: float = 0.9
    """Discount per interval; recirculated packages come back within minutes, so a short
    horizon carries the consequences that matter."""
    lr: float = 1e-3
    """Adam learning rate."""
    lr_final: float = 1.0
    """The learning rate at the last episode as a share of ``lr``, reached linearly over the
    episodes; 1 keeps it constant. Why: on the large site the greedy network's score moves by
    points between validations 25 episodes apart, late in the run as early; a decaying step
    lets the last episodes settle on what was learned rather than chase the latest days
    (``docs/policy-selection.md``, 2026-12-03 10:40)."""
    hidden: int = 64
    """Width of the two hidden layers."""
    batch_transitions: int = 16
    """Intervals per gradient step; each contributes one row per destination."""
    buffer_transitions: int = 5000
    """Replay buffer size in intervals."""
    learning_starts: int = 50
    """Intervals collected before the first gradient step."""
    updates_per_step: int = 2
    """Gradient steps per simulated interval."""
    epsilon_start: float = 0.5
    """Probability that an agent explores (gets random values) at the start."""
    epsilon_end: float = 0.02
    epsilon_fraction: float = 0.6
    """Share of the episodes over which epsilon decays linearly."""
    target_tau: float = 0.02
    """Polyak rate of the target network."""
    reward_scale: float = 1.0
    """Rewards are -recirculations / (mean packages per destination-interval) * this."""
    validate_every: int = 25
    """Episodes between greedy validations; the best validated network is exported."""
    checkpoint: str = "worst"
    """Which validated network the run exports. ``worst``: the lowest worst validation day (one
    day per group; marl: the lowest mean on its group), as every file before issue 10's ninth
    round; on the large site that day is always group 16's, so the rest of the groups do not
    count. ``rule``: the networks are scored on the selection rule's days
    (``training/selection.py``: one sampled and one drifted day per group), and the export is
    the lowest mean among those whose worst group is no worse than the proportional
    heuristic's on the same days (until one is, the lowest worst group). ``gate``: scored on
    one sampled, one drifted and one concentrated day per group, the export is the lowest mean
    among those no worse than proportional in mean and worst group on each kind of day
    (``training.pregate``, the release gate's test; until one is, the smallest excess)."""
    snapshots: int = 1
    """How many validated networks the run exports: the value ensemble of the ``snapshots``
    best by the checkpoint's key (the best first; ``training.ensemble``), or the best alone at
    1. Why: on the large site the checkpoint's score jumps by points between validations, and
    one network picked on a handful of days carries that noise; averaging the run's best few
    (snapshot ensembles, Huang et al. 2017) costs no training (``docs/policy-selection.md``,
    2026-12-03 07:59)."""
    predictor_episodes: int = 20
    """drmarl: rollout days used to fit the worst-group predictor."""
    predictor_epochs: int = 40
    """drmarl: passes over the predictor's data."""
    solver_time_limit_s: float = 0.05
    """CP-SAT time limit per projection, as in serving."""
    drift_probability: float = 0.0
    """Share of training days whose destination mix is drifted (a fraction of destinations'
    volumes reassigned, uniform in [0.25, 1]): days that depart from every group, so the
    policy learns on the plan error the honest plan protocol leaves (issue 10)."""
    concentration_probability: float = 0.0
    """Share of training days on which one big destination suddenly takes a set share of the day.
    On those days a destination drawn among the plan's top tenth is grown to a share of the day's
    volume uniform in ``concentration_share`` (``twin.spike.with_concentration``: one customer's
    promotion, every other destination unchanged); on half of them the plan knows it (an
    announced promotion), on the other half it does not. Drawn independently of the drift.
    History-fitted groups rarely hold such a day type (issue 19)."""
    concentration_share: tuple[float, float] = (0.15, 0.25)
    """Range of the concentrated destination's share of the day on those days."""

    feature_set: str = "trust"
    """The features the network reads (``decision.features.FEATURE_SETS``): ``trust`` adds the
    online plan's trust to ``base``, so the policy can tell a recognized day from one that
    departs from every group. The ONNX file lists them; the engine feeds it exactly those."""

    contamination: float = 1.0
    """drmarl, drmarl-exhaustive: weight of the worst group in the robust reward. The ambiguity
    set is the epsilon-contamination ball around the day actually simulated: every mixture
    (1 - rho) * realized day + rho * any group, whose worst case is (1 - rho) * the realized
    reward + rho * the worst group's. 1.0 is the paper's target (the worst group alone), which
    never sees the consequences of a day outside every group; below 1 the realized day (a
    drifted one included) keeps its share of the target."""

    group_dro: float = 0.0
    """drmarl, drmarl-exhaustive: temperature eta of the adversary that picks the training
    days' groups. 0: groups uniform (the paper). Above 0 the groups are drawn from the solution
    of the KL-regularized worst case over mixtures of groups, ``q_g ~ exp(eta * L_g)``, where
    ``L_g`` is the policy's recent recirculation on group ``g`` over the proportional
    heuristic's: the policy trains most on the day types where it is worst against the
    heuristic, and on each of them learns from the day itself rather than hedging on days it
    has already recognized."""
    group_dro_reference: str = "proportional"
    """The policy the adversary's losses are measured against on each group's probe day.
    ``proportional``: the heuristic (weights go where the policy is worst against it; the hard
    day types). ``lookahead``: the perfect-information reference (weights go where the policy
    is furthest from the best achievable, relatively; the easy day types where it is not
    sharp)."""
    group_dro_probe_every: int = 0
    """Where the adversary's losses come from. 0: each training day's own recirculation
    (exploration included). N > 0: every N episodes, the greedy policy's recirculation on one
    probe day per group (the days the heuristic's reference ran on), so the weights follow what
    the policy does, not what its exploration costs."""

    def __post_init__(self) -> None:
        _check_choice("checkpoint", self.checkpoint, CHECKPOINTS)
        if not 0.0 < self.lr_final <= 1.0:
            raise ValueError(f"lr-final must be in (0, 1], got {self.lr_final}")
        if self.snapshots < 1:
            raise ValueError(f"snapshots must be at least 1, got {self.snapshots}")
        _check_choice("group-dro reference", self.group_dro_reference, GROUP_DRO_REFERENCES)
        _check_choice("feature set", self.feature_set, tuple(FEATURE_SETS))
        if not 0.0 <= self.concentration_probability <= 1.0:
            raise ValueError("concentration probability must be in [0, 1]")
        low, high = self.concentration_share
        if not 0.0 < low <= high < 1.0:
            raise ValueError("concentration share must be a range inside (0, 1)")
        self.concentration_share = (float(low), float(high))

    @classmethod
    def quick(cls, **overrides: object) -> Settings:
        """A run that finishes in seconds, for tests and smoke checks."""
        tiny: dict[str, object] = {
            "episodes": 4,
            "learning_starts": 5,
            "validate_every": 2,
            "predictor_episodes": 2,
            "predictor_epochs": 3,
            "batch_transitions": 4,
        }
        return cls(**{**tiny, **overrides})  # type: ignore[arg-type]


_SMALL_ROBUST: dict[str, object] = {
    "feature_set": "trust",
    "contamination": 0.1,
    "drift_probability": 0.3,
    "group_dro": 4.0,
    "group_dro_probe_every": 25,
}

SHIPPED_RECIPES: dict[tuple[str, str], dict[str, object]] = {
    ("small", "marl"): {"feature_set": "base"},
    ("large", "marl"): {"feature_set": "base"},
    ("small", "drmarl"): _SMALL_ROBUST,
    ("small", "drmarl-exhaustive"): _SMALL_ROBUST,
    ("large", "drmarl"): {
        "feature_set": "base",
        "checkpoint": "rule",
        "contamination": 0.1,
        "drift_probability": 0.5,
        "group_dro": 4.0,
        "group_dro_probe_every": 25,
    },
}
"""The robust settings of the shipped policies (picked on validation days by
``docs/policy-selection.md``), which ``train --table`` uses; the defaults above are the
paper's target. MARL has no robust reward and trains on its typical group as in the paper.
Files trained before ``plan_trust`` existed read the ``base`` features. The large DRMARL and
the small DRMARL-exhaustive files are value ensembles (``training/ensemble.py``); their recipe
here is their first member's, and each member's settings are in
``decision/policies/runs/<file>/members.json``."""


def recipe(scenario: str, algo: str, **overrides: object) -> Settings:
    """The settings the shipped ``algo`` policy of ``scenario`` (its first member, for an
    ensemble) was trained with."""
    return Settings(
        scenario=scenario,
        algo=algo,  # type: ignore[arg-type]
        **{**SHIPPED_RECIPES.get((scenario, algo), {}), **overrides},  # type: ignore[arg-type]
    )


__all__ = ["ALGOS", "SHIPPED_RECIPES", "Algo", "Settings", "recipe"]
