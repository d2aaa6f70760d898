"""The selection rule's day kinds in onboarding (``onboarding.tasks``): a group's sample as drawn,
drifted, and concentrated (one big destination at a fifth of the day, plan unchanged)."""

from __future__ import annotations

from types import SimpleNamespace

from evaluation.suites import CONCENTRATION_SHARE
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.seeds import Stream, derive
from onboarding.pipeline import _validation_jobs
from onboarding.tasks import (
    RULE_CONCENTRATED,
    RULE_DRIFTED,
    RULE_KINDS,
    RULE_SAMPLED,
    DayJob,
    run_day_job,
)


def test_every_group_day_is_scored_as_sampled_drifted_and_concentrated() -> None:
    groups = default_groups(load_scenario("small"))
    no_files = SimpleNamespace(validation=[])  # the rule's sampled days only
    jobs = _validation_jobs("small", groups, no_files, "proportional", "p", 2)  # type: ignore[arg-type]
    assert len(jobs) == groups.n_groups * 2 * len(RULE_KINDS)
    assert [j.index for j in jobs] == list(range(len(jobs)))
    for g in range(groups.n_groups):
        for k in range(2):
            seed = derive(Stream.VALIDATION_DAY, g, k)
            kinds = [j.suite for j in jobs if j.group == g and j.seed == seed]
            assert kinds == [RULE_SAMPLED, RULE_DRIFTED, RULE_CONCENTRATED]


def test_a_concentrated_rule_day_is_the_sampled_day_with_one_big_destination_grown() -> None:
    seed = derive(Stream.VALIDATION_DAY, 1, 0)
    rows = {
        kind: run_day_job(DayJob("small", "proportional", "p", kind, seed, 0, group=1))
        for kind in (RULE_SAMPLED, RULE_CONCENTRATED)
    }
    sampled, concentrated = rows[RULE_SAMPLED], rows[RULE_CONCENTRATED]
    assert "concentration" in str(concentrated["label"])
    assert f"{CONCENTRATION_SHARE:.0%}" in str(concentrated["label"])
    assert concentrated["group"] == sampled["group"] == 1
    # the promotion's packages come on top of the day as drawn
    assert int(concentrated["inducted"]) > int(sampled["inducted"])  # type: ignore[call-overload]
    again = run_day_job(DayJob("small", "proportional", "p", RULE_CONCENTRATED, seed, 0, group=1))
    assert again == concentrated
