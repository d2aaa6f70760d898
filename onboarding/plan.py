"""What an onboarding run does, sized: the split, the group range, the candidates and the
evaluation, from a time budget (or pinned by hand, for runs that must match elsewhere).

The plan is written into the stage journal the first time and read back on a resume, so a
resumed run trains exactly the members it planned (a re-measured budget could otherwise
change the episode count and throw the finished members away).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from training.settings import SHIPPED_RECIPES, Settings
from twin.split import DEFAULT_HELDOUT_WEEKS, DEFAULT_VALIDATION_WEEKS, MIN_FIT_DAYS

CONCENTRATION_TRAINING: dict[str, object] = {
    "concentration_probability": 0.25,
    "checkpoint": "gate",
}
"""What onboarding adds to the shipped DRMARL recipes: a quarter of the training days have one
big (top-tenth) destination grown to 15-25% of the day (``Settings.concentration_probability``),
half of them with the plan knowing it, and the run exports the network the release gate's test
prefers on validation days with a concentrated one (``checkpoint = "gate"``,
``training.pregate``). Groups fitted on a site's history cannot hold a day type the history
shows only a couple of times, so the candidates see it in training rather than never, and the
export is chosen on it rather than blind to it (``docs/policy-selection.md``, 2026-12-03);
MARL stays the paper's baseline."""

RECIPES: dict[str, tuple[str, dict[str, object]]] = {
    "marl": ("marl", dict(SHIPPED_RECIPES[("small", "marl")])),
    "drmarl-mixture": (
        "drmarl",
        {**SHIPPED_RECIPES[("small", "drmarl")], **CONCENTRATION_TRAINING},
    ),
    "drmarl-rule": ("drmarl", {**SHIPPED_RECIPES[("large", "drmarl")], **CONCENTRATION_TRAINING}),
    "drmarl-lookahead": (
        "drmarl",
        {
            **SHIPPED_RECIPES[("large", "drmarl")],
            "group_dro": 1.0,
            "group_dro_reference": "lookahead",
            **CONCENTRATION_TRAINING,
        },
    ),
    "drmarl-mixture-shipped": ("drmarl", dict(SHIPPED_RECIPES[("small", "drmarl")])),
    "drmarl-rule-shipped": ("drmarl", dict(SHIPPED_RECIPES[("large", "drmarl")])),
}
"""The candidates' recipes: the shipped policies' settings (``training.settings``), named by
what distinguishes them. MARL as in the paper; DRMARL with the small site's robust recipe
(contamination 0.1, drifted days, group adversary) and with the large site's (its
contamination, drift and adversary), both with :data:`CONCENTRATION_TRAINING`'s concentrated
days and checkpoint. The names are the shipped recipes' (``drmarl-rule``: the large one, whose
own ``rule`` checkpoint onboarding replaces by ``gate``), so earlier bundles' members keep
theirs. ``drmarl-lookahead`` is opt-in (``site onboard --recipes``): the large recipe with the
adversary's losses measured against the lookahead, eta 1, the settings of three of the shipped
``drmarl-large``'s ten members (``docs/policy-selection.md``, 2026-12-03 07:03). The
``-shipped`` pair (opt-in) are the shipped recipes exactly, without onboarding's concentrated
days and gate checkpoint: what the hand work trained, for reproducing it
(``docs/onboarding-large-site.md``, 2026-12-03 13:48)."""
DEFAULT_RECIPES = ("marl", "drmarl-mixture", "drmarl-rule")
"""What a run trains unless ``--recipes`` says otherwise."""

EPISODE_COST = {"marl": 3.0, "drmarl": 12.0}
"""A training episode's cost in plain day-runs (measured on the small site: MARL ~2.5x a
proportional day, DRMARL ~12x with its worst-group branches and probes)."""
TRAIN_SHARE = 0.55
"""Share of the budget's CPU-seconds that training gets (evaluation and selection the rest)."""
MIN_EPISODES, MAX_EPISODES = 30, 300
QUICK_TRAINING: dict[str, object] = {
    "episodes": 4,
    "learning_starts": 5,
    "validate_every": 2,
    "predictor_episodes": 2,
    "predictor_epochs": 3,
    "batch_transitions": 4,
    "group_dro_probe_every": 2,
}
"""``--quick``: ``training.settings.Settings.quick``'s knobs (seconds per member)."""


@dataclass(frozen=True)
class OnboardOptions:
    """Every knob of an onboarding run (``chuteflow site onboard --help`` lists them)."""

    minutes: float = 30.0
    """Wall-clock budget; sizes the training episodes and seeds."""
    heldout_weeks: int = DEFAULT_HELDOUT_WEEKS
    """The last weeks of history: only judged on, never tuned on (``twin.split``)."""
    validation_weeks: int = DEFAULT_VALIDATION_WEEKS
    """The weeks before them: candidates are picked on these (and the rule's sampled days)."""
    min_fit_days: int = MIN_FIT_DAYS
    """The least history the groups may be fitted on."""
    allow_gaps: bool = False
    """Accept dates missing on operating weekdays (known closures); refused by default."""
    k_min: int = 2
    k_max: int = 12
    """Range of day-type group counts tried (``onboarding.groups``)."""
    groups_criterion: str = "silhouette"
    """How the group count is chosen: ``silhouette`` or ``gap`` (``onboarding.groups``)."""
    recipes: tuple[str, ...] = DEFAULT_RECIPES
    seeds: int | None = None
    """Training seeds per recipe; None: as many (1-3) as the budget allows."""
    episodes: int | None = None
    """Episodes per member; None: sized from the budget."""
    eval_seeds: int = 2
    """Days per group in the group-based suites."""
    suites: tuple[str, ...] = (
        "group",
        "spike",
        "concentration",
        "shifted",
        "drift-25",
        "drift-50",
        "drift-100",
    )
    """Stress suites run on the fitted groups, next to the held-out history; the release gate
    checks every one. ``concentration`` is there for every site: groups fitted on a history
    cannot hold a day type it shows only a couple of times (one customer's promotion)."""
    validation_per_group: int = 3
    """The selection rule's sampled days per group (each also drifted)."""
    ensemble_size: int = 3
    """Most members of the value ensemble (the picked algorithm's candidates that pass the
    pre-gate, ``training.pregate.ensemble_members``)."""
    snapshots: int = 1
    """Each DRMARL candidate: the value ensemble of its run's best checkpoints
    (``Settings.snapshots``); 1: the best alone."""
    lr_final: float = 1.0
    """DRMARL candidates' learning rate at their last episode as a share of the recipe's
    (``Settings.lr_final``, linear decay); 1: constant."""
    quick: bool = False
    """CI-sized: tiny training (``QUICK_TRAINING``), one seed, one day per group."""

    @classmethod
    def quick_run(cls, **overrides: Any) -> OnboardOptions:
        tiny: dict[str, Any] = {
            "minutes": 2.0,
            "heldout_weeks": 1,
            "validation_weeks": 1,
            "min_fit_days": 14,
            "k_max": 3,
            "recipes": ("marl", "drmarl-mixture"),
            "seeds": 2,
            "episodes": 4,
            "eval_seeds": 1,
            "suites": ("group", "spike", "concentration", "drift-50"),
            "validation_per_group": 1,
            "ensemble_size": 2,
            "quick": True,
        }
        return cls(**{**tiny, **overrides})

    def check(self) -> None:
        """Raise ``ValueError`` with one line for an option that cannot work."""
        for recipe in self.recipes:
            if recipe not in RECIPES:
                raise ValueError(f"unknown recipe {recipe!r}: use {', '.join(RECIPES)}")
        if not self.recipes or len(set(self.recipes)) != len(self.recipes):
            raise ValueError(f"--recipes needs distinct recipes, got {','.join(self.recipes)!r}")
        if self.ensemble_size < 1:
            raise ValueError("--ensemble-size must be at least 1")
        if self.snapshots < 1:
            raise ValueError("--snapshots must be at least 1")
        if not 0.0 < self.lr_final <= 1.0:
            raise ValueError(f"--lr-final must be in (0, 1], got {self.lr_final:g}")
        if self.minutes <= 0:
            raise ValueError("--minutes must be positive")
        if min(self.heldout_weeks, self.validation_weeks, self.min_fit_days) < 1:
            raise ValueError("every part of the split needs at least one day")
        if self.groups_criterion not in ("silhouette", "gap"):
            raise ValueError(
                f"unknown groups criterion {self.groups_criterion!r}: use silhouette, gap"
            )
        if not 1 <= self.k_min <= self.k_max:
            raise ValueError(f"need 1 <= k-min <= k-max, got {self.k_min}..{self.k_max}")


@dataclass(frozen=True)
class TrainingPlan:
    """The members to train: recipes x seeds at ``episodes`` each, and why that size."""

    episodes: int
    seeds: int
    recipes: tuple[str, ...]
    day_seconds: float
    """The measured cost of one day-run (what the sizing used)."""
    cpus: int
    reason: str
    overrides: dict[str, object] = field(default_factory=dict)
    snapshots: int = 1
    """DRMARL members' ``Settings.snapshots`` (a plan written before it existed reads 1)."""
    lr_final: float = 1.0
    """DRMARL members' ``Settings.lr_final`` (a plan written before it existed reads 1)."""

    def members(self, site: str) -> list[tuple[str, Settings]]:
        jobs = []
        for recipe in self.recipes:
            algo, settings = RECIPES[recipe]
            for seed in range(1, self.seeds + 1):
                values: dict[str, Any] = {**settings, **self.overrides}
                values.update(scenario=site, algo=algo, seed=seed, episodes=self.episodes)
                if algo == "drmarl":
                    values.update(snapshots=self.snapshots, lr_final=self.lr_final)
                jobs.append((f"{recipe}-s{seed}", Settings(**values)))
        return jobs

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingPlan:
        """A plan as :meth:`to_json` wrote it (``plan.json``, the manifest's ``training``);
        JSON gives the recipes as a list, and a plan written before a field existed reads
        that field's default."""
        return cls(**{**data, "recipes": tuple(data["recipes"])})

    def pin_flags(self) -> str:
        """The ``site onboard`` flags that make these members on any machine.

        Why: a budget-sized plan comes from this machine's measured day-run and CPU count, so
        the same ``--minutes`` on a faster machine trains more episodes and other bytes; the
        report gives these flags so a bundle can be made again elsewhere, byte for byte."""
        flags = [f"--seeds {self.seeds}", f"--episodes {self.episodes}"]
        flags.append(f"--recipes {','.join(self.recipes)}")
        if self.overrides:
            flags.append("--quick")
        if self.snapshots != 1:
            flags.append(f"--snapshots {self.snapshots}")
        if self.lr_final != 1.0:
            flags.append(f"--lr-final {self.lr_final:g}")
        return " ".join(flags)


def size_training(options: OnboardOptions, day_seconds: float, cpus: int) -> TrainingPlan:
    """Episodes and seeds from the budget: the most seeds (3 down to 1) that still leave at
    least 150 episodes per member, episodes capped at the paper's 300."""
    overrides = (
        {k: v for k, v in QUICK_TRAINING.items() if k != "episodes"} if options.quick else {}
    )
    algos = [RECIPES[r][0] for r in options.recipes]
    per_seed_cost = sum(EPISODE_COST[a] for a in algos) * day_seconds
    budget = TRAIN_SHARE * options.minutes * 60.0 * cpus
    if options.episodes is not None and options.seeds is not None:
        return TrainingPlan(
            options.episodes,
            options.seeds,
            options.recipes,
            day_seconds,
            cpus,
            "pinned",
            overrides,
            options.snapshots,
            options.lr_final,
        )
    for seeds in [options.seeds] if options.seeds is not None else [3, 2, 1]:
        episodes = int(budget / max(per_seed_cost * seeds, 1e-9))
        if options.episodes is not None:
            episodes = options.episodes
        if episodes >= 150 or seeds == 1 or options.seeds is not None:
            episodes = max(MIN_EPISODES, min(MAX_EPISODES, episodes))
            reason = (
                f"{budget / 60:.0f} CPU-minutes for training ({TRAIN_SHARE:.0%} of "
                f"{options.minutes:g} min x {cpus} CPUs), a day-run {day_seconds:.3f} s"
            )
            return TrainingPlan(
                episodes,
                seeds,
                options.recipes,
                day_seconds,
                cpus,
                reason,
                overrides,
                options.snapshots,
                options.lr_final,
            )
    raise AssertionError("unreachable: seeds == 1 always returns")


__all__ = [
    "CONCENTRATION_TRAINING",
    "DEFAULT_RECIPES",
    "RECIPES",
    "OnboardOptions",
    "TrainingPlan",
    "size_training",
]
