"""The members an onboarding plan trains: the default DRMARL recipes add the concentrated days
and the gate checkpoint to the shipped settings; the ``-shipped`` recipes are the shipped
settings exactly (what reproducing the hand work needs)."""

from __future__ import annotations

from dataclasses import replace

from onboarding.plan import OnboardOptions, size_training
from training.settings import SHIPPED_RECIPES, Settings


def _members(recipes: tuple[str, ...]) -> dict[str, Settings]:
    options = OnboardOptions(recipes=recipes, seeds=2, episodes=40)
    plan = size_training(options, day_seconds=0.1, cpus=2)
    assert plan.reason == "pinned" and (plan.seeds, plan.episodes) == (2, 40)
    return dict(plan.members("site.yaml"))


def test_default_drmarl_recipes_add_concentrated_days_and_the_gate_checkpoint() -> None:
    members = _members(("marl", "drmarl-mixture", "drmarl-rule"))
    assert sorted(members) == [
        "drmarl-mixture-s1",
        "drmarl-mixture-s2",
        "drmarl-rule-s1",
        "drmarl-rule-s2",
        "marl-s1",
        "marl-s2",
    ]
    for name in ("drmarl-mixture-s1", "drmarl-rule-s2"):
        assert members[name].concentration_probability == 0.25
        assert members[name].checkpoint == "gate"
    assert members["marl-s1"].concentration_probability == 0.0


def test_shipped_recipes_are_the_shipped_settings_exactly() -> None:
    members = _members(("drmarl-mixture-shipped", "drmarl-rule-shipped"))
    for name, key in (("drmarl-mixture-shipped-s2", "small"), ("drmarl-rule-shipped-s1", "large")):
        settings = members[name]
        expected = Settings(
            scenario="site.yaml",
            algo="drmarl",
            seed=settings.seed,
            episodes=40,
            **SHIPPED_RECIPES[(key, "drmarl")],  # type: ignore[arg-type]
        )
        assert settings == expected
        assert settings.concentration_probability == 0.0
    assert members["drmarl-rule-shipped-s1"].checkpoint == "rule"
    assert replace(members["drmarl-rule-shipped-s1"], seed=2) == members["drmarl-rule-shipped-s2"]


def _replanned(flags: str, site: str = "s.yaml") -> list[tuple[str, Settings]]:
    """The members the CLI plans from a report's pin flags on another, much faster machine."""
    from chuteflow.cli import build_parser
    from chuteflow.cli.onboard import _options

    args = build_parser().parse_args(
        ["site", "onboard", "--site", site, "--history", "h", "--out", "b", *flags.split()]
    )
    options = _options(args)
    assert isinstance(options, OnboardOptions)
    plan = size_training(options, day_seconds=0.01, cpus=64)
    assert plan.reason == "pinned"
    return plan.members(site)


def test_a_budget_sized_plan_is_made_again_anywhere_by_its_pin_flags() -> None:
    for options in (
        OnboardOptions(minutes=20.0),
        OnboardOptions(minutes=45.0, recipes=("marl", "drmarl-rule"), snapshots=3, lr_final=0.1),
    ):
        plan = size_training(options, day_seconds=0.3, cpus=2)
        assert plan.reason != "pinned"  # sized from this machine's speed
        elsewhere = size_training(options, day_seconds=0.01, cpus=64)
        assert elsewhere.members("s.yaml") != plan.members("s.yaml")  # the budget alone drifts
        assert _replanned(plan.pin_flags()) == plan.members("s.yaml")
    quick = size_training(OnboardOptions.quick_run(), day_seconds=0.3, cpus=2)
    assert "--quick" in quick.pin_flags()
    assert _replanned(quick.pin_flags()) == quick.members("s.yaml")
